"""A session that heals itself: its learner, its writer and a robot's worker are SIGKILLed at
random times, five times each; it recovers with no one's help, loses nothing committed, never
counts backwards and stops cleanly when asked. A part that keeps dying stops it with that reason."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from buffer import ZarrStorage
from robot_rl.core import SessionError
from robot_rl.runtime.ray.session import RaySession
from tests.integration.sessions import new_session

SMALL = ["task=reach", "task.max_steps=20", "learner.warmup_steps=100", "learner.batch_size=32",
         "algo.params.hidden=[32,32]", "runtime.realtime=true", "run.checkpoint_every=200"]
PARTS = ("learner", "writer", "robot sim0")


def committed(run: Path) -> int:
    try:
        return int(json.loads((run / "buffer" / "commit.json").read_text())
                   ["tables"]["steps"]["rows"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def pid_of(session: RaySession, part: str) -> int | None:
    return session.supervisor.parts().get(part, {}).get("pid")


def start(session: RaySession) -> tuple[threading.Thread, dict[str, object]]:
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result.update(session.run_until_budget())
        except Exception as exc:  # noqa: BLE001 - the test reads it
            result["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    return runner, result


@pytest.mark.slow
def test_parts_killed_five_times_each_come_back_and_nothing_committed_is_lost(
        tmp_path: Path, ray_local: None) -> None:
    root = tmp_path / "run"
    # 15 kills, each waiting for its part to come back, take ~100 s on a quiet machine and
    # longer on a busy one: the budget is out of reach and the test stops the session itself
    session = new_session(root, *SMALL, "robot.control_hz=50", "run.env_steps=1000000",
                          "runtime.max_restarts=20")
    runner, result = start(session)
    wait_for(lambda: all(pid_of(session, p) for p in PARTS) and committed(root) > 150, 180,
             "the session never got going")
    rng = random.Random(7)
    order = [*PARTS] * 5
    rng.shuffle(order)
    for part in order:
        time.sleep(rng.uniform(0.5, 3.0))
        assert runner.is_alive(), result.get("error")
        before, pid = committed(root), pid_of(session, part)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda part=part, pid=pid: pid_of(session, part) not in (None, pid), 180,
                 f"the {part} never came back")
        assert committed(root) >= before  # nothing committed is lost
    last = committed(root)
    session.request_stop()
    runner.join(timeout=300)
    assert not runner.is_alive() and "error" not in result, result.get("error")
    assert int(result["env_steps"]) >= last > 150  # type: ignore[call-overload]

    died = [line for line in session.supervisor.events if " died (pid " in line]
    for part in PARTS:
        assert sum(f"the {part} died" in line for line in died) >= 5, died
    assert any("nothing committed" in line for line in died if "writer" in line)
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    for key in ("env_steps", "updates", "policy_version"):
        values = np.array([row[key] for row in rows])
        assert (np.diff(values) >= 0).all(), key  # never backwards
    storage = ZarrStorage.open_existing(root / "buffer")
    info = storage.read_step_info()
    marks = json.loads((root / "buffer" / "commit.json").read_text())["meta"]["streams"]
    assert marks["sim0"] + 1 == storage.steps  # one stream, every seq once, nothing skipped
    assert len(set(zip(info["episode_id"].tolist(), info["step"].tolist(), strict=True))) == \
        storage.steps
    status = json.loads((root / "status.json").read_text())
    assert status["state"] == "stopped"
    assert {p: status["parts"][p]["restarts"] >= 5 for p in PARTS} == dict.fromkeys(PARTS, True)


@pytest.mark.slow
def test_a_part_that_keeps_dying_stops_the_session_with_that_reason(
        tmp_path: Path, ray_local: None) -> None:
    root = tmp_path / "run"
    session = new_session(root, *SMALL, "robot.control_hz=100", "run.env_steps=100000",
                          "runtime.max_restarts=2")
    runner, result = start(session)
    wait_for(lambda: pid_of(session, "learner") is not None, 180, "no learner")
    for _ in range(2):
        pid = pid_of(session, "learner")
        os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
        wait_for(lambda pid=pid: pid_of(session, "learner") != pid or not runner.is_alive(), 180,
                 "the learner never came back")
    runner.join(timeout=300)
    assert not runner.is_alive()
    error = result.get("error")
    assert isinstance(error, SessionError), result
    assert "the learner died 2 times in 300 s" in str(error)
    status = json.loads((root / "status.json").read_text())
    assert status["state"] == "failed"
    assert ZarrStorage.open_existing(root / "buffer").steps == committed(root) > 0


@pytest.mark.slow
def test_of_two_robots_the_one_that_faults_sits_out_held_and_rejoins_when_healthy(
        tmp_path: Path, ray_local: None) -> None:
    root, drill = tmp_path / "run", tmp_path / "b-estop"
    session = new_session(root, *SMALL, "robot.control_hz=100", "run.env_steps=100000",
                          f"robots={{a: {{}}, b: {{fault_file: {drill}}}}}")
    runner, result = start(session)

    def episodes_of() -> dict[str, int]:
        try:
            table = ZarrStorage.open_existing(root / "buffer").read_episodes()
        except Exception:  # noqa: BLE001 - not created yet
            return {"a": 0, "b": 0}
        robots = ZarrStorage.open_existing(root / "buffer").robots
        names = [robots[i] for i in table["robot_id"]]
        return {r: names.count(r) for r in ("a", "b")}

    def health(robot: str) -> str:
        status = json.loads((root / "status.json").read_text())
        return str(status["robots"].get(robot, {}).get("health", ""))

    try:
        wait_for(lambda: min(episodes_of().values()) >= 3, 240, "the robots never got going")
        drill.write_text("driver reports a joint overcurrent")  # mid-episode
        wait_for(lambda: health("b").startswith("held (fault: fault drill: driver"), 60,
                 "robot b was never held")
        during = episodes_of()
        time.sleep(4.0)
        later = episodes_of()
        assert later["a"] > during["a"]  # the other robot goes on
        assert later["b"] <= during["b"] + 1  # b sits out (its interrupted episode may end)
        drill.unlink()  # cleared: b rejoins
        wait_for(lambda: episodes_of()["b"] >= later["b"] + 3, 120, "robot b never rejoined")
        assert health("b") == "ok"
    finally:
        session.request_stop()
        runner.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert not any(" died " in line for line in session.supervisor.events)  # held, not killed


@pytest.mark.slow
def test_a_robot_that_fails_for_good_stops_the_session_with_every_other_robot_held(
        tmp_path: Path, ray_local: None) -> None:
    """A part that cannot come back (its process gone, no restart) ends the session with the
    reason; the robots still running finish their episode and hold, a checkpoint is taken, and
    the status says failed, instead of the others acting on with no one watching."""
    root = tmp_path / "run"
    session = new_session(root, *SMALL, "robot.control_hz=100", "run.env_steps=100000",
                          "robots={a: {}, b: {}}")
    runner, result = start(session)
    try:
        wait_for(lambda: committed(root) > 150, 240, "the robots never got going")
        ray.kill(session.handles["b"].actor, no_restart=True)  # type: ignore[attr-defined]
        runner.join(timeout=120)
    finally:
        session.request_stop()
        runner.join(timeout=300)
    assert isinstance(result.get("error"), SessionError), result
    assert "a part of the session failed" in str(result["error"])
    status = json.loads((root / "status.json").read_text())
    assert status["state"] == "failed"
    stored = committed(root)
    time.sleep(2.0)
    assert committed(root) == stored  # robot a holds: nothing more is added
    assert list((root / "checkpoints").iterdir())  # the learner checkpointed on the way out
