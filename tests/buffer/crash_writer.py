"""A writer process for the SIGKILL test: streams two robots' steps, committing as it goes.

It continues exactly where the last commit's meta says, prints `ready` once open and the row
count after every commit, and never stops on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from buffer import ReplayBuffer
from tests.buffer.helpers import ACTION_SPEC, OBS_SPEC, SMALL_CHUNK, transition


def main(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, chunk_bytes=SMALL_CHUNK)
    nxt = {int(r): tuple(v) for r, v in buf.commit_meta.get("next", {"0": [0, 0],
                                                                      "1": [0, 0]}).items()}
    print("ready", len(buf), flush=True)
    while True:
        for _ in range(int(rng.integers(1, 40))):
            robot = int(rng.integers(0, 2))
            episode, step = nxt[robot]
            last = step >= 5 and rng.random() < 0.1
            buf.append([transition(robot, episode, step, last=last)])
            if last:
                buf.end_episode(True, robot_id=f"robot{robot}")
                nxt[robot] = (episode + 1, 0)
            else:
                nxt[robot] = (episode, step + 1)
        buf.commit({"next": {str(r): list(v) for r, v in nxt.items()}, "rows": len(buf) +
                     sum(t.staged_rows for n, t in buf.storage.tables.items() if n == "steps")})
        print("committed", len(buf), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
