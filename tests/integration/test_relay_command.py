"""`robot-rl relay` as a user runs it: robots behind it get the cloud's weights; a wrong token
and an unreachable cloud are one line each."""

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

from comms.auth import TOKEN_ENV
from comms.bulk import BulkServer
from comms.edge_link import EdgeLink
from comms.edge_weights import EdgeWeights
from comms.gateway import Gateway, GatewayThread
from comms.spool import Spool
from comms.weight_service import WeightService
from comms.weight_sync_sender import WeightSender
from robot_rl.cli import main
from robot_rl.runtime.buffer_sink import BufferSink
from tests.integration.comms_helpers import (
    ACTION_SPEC,
    DIGEST,
    FAST,
    OBS_SPEC,
    QUICK_BACKOFF,
    TOKEN,
)


def cloud(tmp_path: Path) -> GatewayThread:
    return GatewayThread(Gateway(BufferSink(tmp_path / "buffer", OBS_SPEC, ACTION_SPEC), TOKEN,
                                 DIGEST, timings=FAST,
                                 weights=WeightService(WeightSender("patch"), bulk=BulkServer())))


def test_an_unreachable_gateway_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN.decode())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    code = main(["relay", "--gateway", f"ws://127.0.0.1:{dead}", "--port", "0",
                 "--connect-timeout", "1"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("robot-rl relay: error: cannot reach the gateway at ws://127.0.0.1:")


def test_a_wrong_token_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    gw = cloud(tmp_path)
    try:
        monkeypatch.setenv(TOKEN_ENV, "a-token-the-gateway-does-not-know")
        code = main(["relay", "--gateway", f"ws://127.0.0.1:{gw.port}", "--port", "0"])
    finally:
        gw.stop()
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "refused the relay" in err and "wrong shared token" in err


def test_robots_behind_the_relay_command_get_the_clouds_weights(tmp_path: Path) -> None:
    gw = cloud(tmp_path)
    relay = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "relay", "--gateway", f"ws://127.0.0.1:{gw.port}",
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, TOKEN_ENV: TOKEN.decode()})
    link = None
    try:
        assert relay.stdout is not None
        line = relay.stdout.readline()
        assert line.startswith("relay listening on ws://127.0.0.1:"), relay.stderr.read()
        url = line.split()[3]
        link = EdgeLink(url, TOKEN, "r1", DIGEST, Spool(tmp_path / "spool"), streams=["r1"],
                        timings=FAST, backoff=QUICK_BACKOFF, weights=EdgeWeights()).start()
        weights = {"w": np.arange(1000, dtype=np.float32)}
        gw.publish_weights(weights, 7)
        deadline = time.monotonic() + 20
        while (got := link.poll_weights()) is None:
            assert time.monotonic() < deadline, gw.weight_stats()
            time.sleep(0.01)
        assert got.version == 7 and got.tensors["w"].tobytes() == weights["w"].tobytes()
        assert set(gw.weight_stats()) == {f"relay-{socket.gethostname()}"}
    finally:
        if link is not None:
            link.close()
            link.spool.close()
        relay.send_signal(signal.SIGINT)
        assert relay.wait(20) == 0
        gw.stop()
