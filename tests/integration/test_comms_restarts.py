"""Restarts of either side: SIGKILL the gateway or the edge mid-stream, start it again, and every
transition produced is in the buffer exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from buffer import ReplayBuffer
from comms.edge_link import EdgeLink
from comms.gateway import Gateway, GatewayThread
from comms.messages import spec_digest
from comms.spool import Spool
from robot_rl.config import compose_session
from robot_rl.core import Transition
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.build import build_robot
from tests.integration.comms_helpers import FAST, QUICK_BACKOFF, TOKEN

CLI = [sys.executable, "-m", "robot_rl.cli"]


def reach_specs() -> tuple:
    arm, _ = build_robot(compose_session(["task=reach"]))
    return arm.observation_spec, arm.action_spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN.decode())
    path.chmod(0o600)
    return path


def start_gateway_process(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*CLI, "gateway", "--port", str(port), "--token-file", str(token_file(tmp_path)),
         "--run-dir", str(tmp_path / "run"), "task=reach"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "gateway listening" in line, line + proc.stdout.read()
    return proc


@pytest.mark.slow
def test_sigkilled_gateway_restarts_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    obs_spec, action_spec = reach_specs()
    port = free_port()
    gateway = start_gateway_process(tmp_path, port)
    spool = Spool(tmp_path / "edge.spool")
    link = EdgeLink(f"ws://127.0.0.1:{port}", TOKEN, "sim0", spec_digest(obs_spec, action_spec),
                    spool, streams=["sim0"], timings=FAST, backoff=QUICK_BACKOFF).start()
    produced = 0
    try:
        def publish(n: int) -> None:
            nonlocal produced
            for _ in range(n):
                obs = obs_spec.zeros()
                t = Transition(obs=obs, action=action_spec.zeros(), reward=0.0, next_obs=obs,
                               terminated=False, truncated=False, robot_id="sim0",
                               wall_time=float(produced))
                link.publish("sim0", [t], {0: False} if produced % 20 == 19 else None)
                produced += 1
                time.sleep(0.005)

        publish(150)
        assert spool.acked("sim0") >= 0, "nothing was acked before the kill"
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        publish(100)  # produced while the gateway is dead: spooled
        gateway = start_gateway_process(tmp_path, port)
        publish(150)
        assert link.wait_acked(30.0), link.stats
    finally:
        link.close()
        spool.close()
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(10)
    buffer = ReplayBuffer(tmp_path / "run" / "buffer", readonly=True)
    wall = buffer.storage.read_steps()["timestamp"]
    np.testing.assert_array_equal(wall, np.arange(produced, dtype=np.float64))
    assert buffer.commit_meta["streams"]["sim0"] == produced - 1
    assert list(buffer.episode_table()["length"]) == [20] * (produced // 20)


def edge_process(tmp_path: Path, port: int, episodes: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "edge", "--gateway", f"ws://127.0.0.1:{port}", "--token-file",
         str(token_file(tmp_path)), "--spool-dir", str(tmp_path / "spool"), "--no-pace",
         "--episodes", str(episodes), "task=reach", "task.max_steps=30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "MUJOCO_GL": "egl"})


@pytest.mark.slow
def test_sigkilled_edge_restarts_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    obs_spec, action_spec = reach_specs()
    sink = BufferSink(tmp_path / "buffer", obs_spec, action_spec)
    gw = GatewayThread(Gateway(sink, TOKEN, spec_digest(obs_spec, action_spec), timings=FAST))
    try:
        edge = edge_process(tmp_path, gw.port, episodes=1000)
        deadline = time.monotonic() + 60
        while sink.last_seq("sim0") < 45 and time.monotonic() < deadline:  # mid-episode 2
            time.sleep(0.01)
        edge.send_signal(signal.SIGKILL)
        edge.wait(10)
        assert sink.last_seq("sim0") >= 45
        edge = edge_process(tmp_path, gw.port, episodes=2)
        out, _ = edge.communicate(timeout=120)
        assert edge.returncode == 0, out
        assert "unacked in spool: 0" in out, out
    finally:
        gw.stop()
    spool = Spool(tmp_path / "spool" / "transitions.spool")
    produced = spool.next_seq("sim0")
    spool.close()
    buffer = ReplayBuffer(tmp_path / "buffer", readonly=True)
    assert len(buffer) == produced and buffer.commit_meta["streams"]["sim0"] == produced - 1
    episode_ids = buffer.storage.read_steps()["episode_id"]
    table = buffer.episode_table()
    assert table["length"].sum() == produced
    seen = []
    for start, length in zip(table["start"], table["length"], strict=True):
        ids = set(episode_ids[start:start + length].tolist())
        assert len(ids) == 1, f"rows of episodes {ids} were merged into one"
        seen.append(ids.pop())
    assert len(seen) == len(set(seen)) and len(seen) >= 3
    assert max(table["length"]) <= 30
