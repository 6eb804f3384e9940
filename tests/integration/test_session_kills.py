"""The whole session stopped the hard ways, through the real `robot-rl` commands: SIGTERM, then
kill -9 of every process of the session and of its edge robot at once; each time the same
commands again resume it with its buffer, its demos and its interventions intact."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from buffer import ZarrStorage
from tests.integration.comms_helpers import token_file

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["learner.warmup_steps=60", "learner.batch_size=32", "algo.params.hidden=[32,32]",
         "task.max_steps=30", "robot.control_hz=50", "runtime.realtime=true"]


def robot_rl(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """A `robot-rl` command in a session of its own (so all it starts can be killed at once)."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "robot_rl.cli", *args], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def rows(path: Path) -> int:
    try:
        return int(json.loads((path / "commit.json").read_text())["tables"]["steps"]["rows"])
    except (OSError, ValueError, KeyError):
        return 0


def stream_mark(run: Path, stream: str) -> int:
    try:
        return int(json.loads((run / "buffer" / "commit.json").read_text())
                   ["meta"]["streams"].get(stream, -1))
    except (OSError, ValueError, KeyError):
        return -1


def wait_for(cond: object, timeout: float, what: str, *procs: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} ended: {proc.returncode}"
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def kill_everything(*procs: subprocess.Popen[bytes]) -> None:
    """kill -9 of every process of these sessions: the commands and all they started."""
    sessions = {os.getsid(p.pid) for p in procs if p.poll() is None}
    for line in subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        pid, sid = map(int, line.split())
        if sid in sessions:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.wait(timeout=30)


def snapshot(run: Path) -> dict[str, object]:
    """What must survive: the buffer's rows, the demo side's rows, the interventions counted."""
    steps = ZarrStorage.open_existing(run / "buffer").read_step_info()
    demos = ZarrStorage.open_existing(run / "demos").read_step_info()
    return {"timestamps": steps["timestamp"].copy(), "demo_timestamps": demos["timestamp"].copy(),
            "intervened": int(steps["intervened"].sum())}


def assert_kept(before: dict[str, object], after: dict[str, object]) -> None:
    for key in ("timestamps", "demo_timestamps"):
        old, new = before[key], after[key]
        assert len(new) >= len(old), key  # type: ignore[arg-type]
        np.testing.assert_array_equal(new[:len(old)], old)  # type: ignore[index,arg-type]
    assert after["intervened"] >= before["intervened"]  # type: ignore[operator]


@pytest.mark.slow
def test_sigterm_then_kill_minus_nine_of_everything_and_the_same_commands_resume(
        tmp_path: Path) -> None:
    run, log = tmp_path / "run", tmp_path / "log"
    token = token_file(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recorded = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "record-demos", "task=pick_cube", "algo=rlpd",
         "episodes=3", "into=demos", f"run.dir={run}"], cwd=ROOT, capture_output=True)
    assert recorded.returncode == 0, recorded.stderr
    train = ["train", "task=pick_cube", "algo=rlpd", "teleop=scripted",
             "teleop.params.start_prob=0.3", *SMALL, "run.env_steps=100000",
             f"gateway.port={port}", f"gateway.token_file={token}", f"run.dir={run}"]
    edge = ["sim-server", "--gateway", f"ws://127.0.0.1:{port}", "--token-file", str(token),
            "--spool-dir", str(tmp_path / "spool"), "pick_cube", "robot.id=edge0",
            "robot.control_hz=50", "task.max_steps=30"]

    session, robot = robot_rl(*train, log=log), robot_rl(*edge, log=log)
    wait_for(lambda: stream_mark(run, "edge0") > 60 and stream_mark(run, "sim0") > 60, 300,
             "the session and its edge robot never committed", session)
    session.send_signal(signal.SIGTERM)  # a service manager's stop
    assert session.wait(timeout=180) == 130
    first = snapshot(run)
    assert first["intervened"] > 0 and len(first["demo_timestamps"]) > 0  # type: ignore[arg-type]
    counters = json.loads((run / "checkpoints" / "latest.json").read_text())

    session = robot_rl(*train, log=log)  # the same command: it resumes, the edge reconnects
    marks = {s: stream_mark(run, s) for s in ("edge0", "sim0")}
    wait_for(lambda: all(stream_mark(run, s) > m + 60 for s, m in marks.items()), 300,
             "the resumed session never went on", session)
    second = snapshot(run)
    assert_kept(first, second)
    kill_everything(session, robot)  # the whole machine's worth, edge included, at once

    session, robot = robot_rl(*train, log=log), robot_rl(*edge, log=log)
    marks = stream_mark(run, "sim0")  # the session's own robot: acting again means it runs
    wait_for(lambda: stream_mark(run, "sim0") > marks + 60, 300,
             "the session never resumed after kill -9", session, robot)
    robot.send_signal(signal.SIGINT)
    robot.wait(timeout=120)
    session.send_signal(signal.SIGINT)
    assert session.wait(timeout=180) == 130
    third = snapshot(run)
    assert_kept(second, third)
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] > counters["step"]
    # every step the edge ever took is stored exactly once: its spool's numbering has no gap
    info = ZarrStorage.open_existing(run / "buffer")
    edge_rows = sum(1 for r in info.read_step_info()["robot_id"] if info.robots[int(r)] == "edge0")
    assert edge_rows == stream_mark(run, "edge0") + 1
