"""Shared pieces of the comms integration tests: a small spec, numbered transitions, checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from buffer import ReplayBuffer
from comms.connection import LinkTimings
from comms.edge_link import Backoff
from comms.messages import spec_digest
from robot_rl.core import ArraySpec, DictSpec, Transition

TOKEN = b"integration-test-token-0123456789"
OBS_SPEC = DictSpec({"state": ArraySpec((3,), "float32"), "image": ArraySpec((16, 16, 3), "uint8")})
ACTION_SPEC = ArraySpec((2,), "float32", -1.0, 1.0)
DIGEST = spec_digest(OBS_SPEC, ACTION_SPEC)
FAST = LinkTimings(heartbeat=0.2, dead_after=1.5, handshake=3.0, send=3.0, commit=30.0)
QUICK_BACKOFF = Backoff(first=0.05, factor=2.0, cap=0.5)


def token_file(folder: Path) -> Path:
    """TOKEN in `folder`/token, readable by its owner only (as the CLI requires)."""
    path = folder / "token"
    path.write_bytes(TOKEN)
    path.chmod(0o600)
    return path


def numbered(i: int, episode: int = 0, step: int = 0) -> Transition:
    """A transition whose reward and wall_time carry its production index `i`."""
    obs = {"state": np.full(3, i, np.float32), "image": np.full((16, 16, 3), i % 256, np.uint8)}
    return Transition(obs=obs, action=np.zeros(2, np.float32), reward=float(i), next_obs=obs,
                      terminated=False, truncated=False, robot_id="r1", episode_id=episode,
                      step=step, wall_time=float(i))


def open_buffer(path: Path) -> ReplayBuffer:
    return ReplayBuffer(path, readonly=True)


def assert_exactly_once(path: Path, produced: int, stream: str = "r1") -> None:
    """The buffer on disk holds transitions 0..produced-1, each exactly once, in order."""
    buffer = open_buffer(path)
    wall = buffer.storage.read_steps()["timestamp"]
    assert len(wall) == produced, f"{len(wall)} rows stored, {produced} produced"
    np.testing.assert_array_equal(wall, np.arange(produced, dtype=np.float64))
    assert buffer.commit_meta["streams"][stream] == produced - 1


