"""An env worker whose robot the health monitor holds, without Ray: the session's ports are
in-process lists, the robot the real sim arm behind its safety layer and health monitor."""

from __future__ import annotations

import threading
from pathlib import Path

from robot_rl.config import compose_session
from robot_rl.core import Episode
from robot_rl.runtime.env_worker import EnvWorker, SessionPorts, SessionStart
from robot_rl.runtime.run_dir import RunDir


def test_a_robot_held_as_its_episode_begins_sits_out_then_rejoins_and_loses_nothing(
        tmp_path: Path) -> None:
    """The monitor may hold the robot between two episodes (its thread polls every 0.5 s): the
    next reset then finds the e-stop engaged. The robot sits out until healthy, not fails."""
    drill = tmp_path / "estop"
    cfg = compose_session(["task=reach", "task.max_steps=10", f"robot.fault_file={drill}",
                           f"run.dir={tmp_path / 'run'}", "algo.params.hidden=[16,16]"])
    committed: list[Episode] = []
    worker: EnvWorker | None = None
    held, cleared = threading.Event(), threading.Event()

    def next_episode_id() -> int:
        if len(committed) == 2 and not held.is_set():
            assert worker is not None  # the monitor holds the robot right before this reset
            held.set()
            drill.write_text("driver reports a joint overcurrent")
            worker.monitor.poll_once()
            assert worker.robot.estopped
            threading.Timer(1.5, lambda: (drill.unlink(), cleared.set())).start()
        return len(committed)

    def commit_episode(stream: str, seq: int, episode: Episode) -> int:
        committed.append(episode)
        return sum(e.length for e in committed)

    ports = SessionPorts(next_episode_id, last_seq=lambda stream: -1,
                         commit_episode=commit_episode, poll_weights=lambda held: None,
                         learner_updates=lambda: 0)
    worker = EnvWorker(cfg, RunDir(tmp_path / "run"), ports, SessionStart(0, 0), gated=False)
    try:
        assert worker.run(60, stopping=lambda: False) == "budget"
    finally:
        worker.close()
    assert cleared.is_set() and worker.monitor.faulted(worker.stream) is None
    assert not worker.robot.estopped
    assert sum(e.length for e in committed) >= 60
    assert all([t.step for t in e.transitions] == list(range(e.length)) for e in committed)
