"""The edge link against a real gateway on 127.0.0.1: streams, acks, inference, auth, wss."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest

from comms.edge_link import EdgeLink
from comms.gateway import GatewayThread
from robot_rl.core import AuthError
from tests.integration.comms_helpers import OBS_SPEC, assert_exactly_once, numbered, open_buffer


def test_a_stream_arrives_exactly_once_with_its_episode_ends(
        tmp_path: Path, start_gateway: Callable[..., GatewayThread],
        make_link: Callable[..., EdgeLink]) -> None:
    gw = start_gateway()
    link = make_link(f"ws://127.0.0.1:{gw.port}")
    for i in range(0, 300, 10):
        ends = {9: i % 50 == 40} if i % 50 == 40 else None
        link.publish("r1", [numbered(j) for j in range(i, i + 10)], ends)
    assert link.wait_acked(20.0), link.stats
    gw.stop()
    assert_exactly_once(tmp_path / "buffer", 300)
    table = open_buffer(tmp_path / "buffer").episode_table()
    assert list(table["length"]) == [50] * 6 and table["success"].all()
    assert link.spool.pending_count() == 0


class EchoPolicy:
    """Serves action = first two state entries, after an optional delay."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        time.sleep(self.delay)
        return np.asarray(obs["state"][:2]), 7


def test_remote_actions_arrive_and_missed_deadlines_are_counted(
        start_gateway: Callable[..., GatewayThread], make_link: Callable[..., EdgeLink]) -> None:
    policy = EchoPolicy()
    gw = start_gateway(inference=policy)
    link = make_link(f"ws://127.0.0.1:{gw.port}")
    deadline = time.monotonic() + 5
    while not link.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    obs = OBS_SPEC.zeros()
    obs["state"][:] = [0.25, -0.5, 1.0]
    response = link.request_action("r1", obs, 1.0)
    assert response is not None and response.policy_version == 7
    np.testing.assert_array_equal(response.action, [0.25, -0.5])
    policy.delay = 0.3
    assert link.request_action("r1", obs, 0.1) is None
    assert link.stats["deadline_missed"] == 1
    policy.delay = 0.0
    time.sleep(0.4)  # the late answer arrives and is dropped, not mistaken for the next one
    assert link.request_action("r1", obs, 1.0) is not None
    assert link.stats["late_responses"] + gw.gateway.stats["requests_expired"] >= 1


def test_a_dead_gateway_is_detected_and_the_robot_held(
        start_gateway: Callable[..., GatewayThread], make_link: Callable[..., EdgeLink]) -> None:
    gw = start_gateway()
    held = threading.Event()
    link = make_link(f"ws://127.0.0.1:{gw.port}", on_hold=lambda why: held.set())
    deadline = time.monotonic() + 5
    while not link.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    gw.stop()
    t0 = time.monotonic()
    assert held.wait(5.0)
    assert time.monotonic() - t0 < 2.0
    assert link.request_action("r1", OBS_SPEC.zeros(), 0.05) is None


def test_a_request_pending_when_the_link_dies_returns_at_once_not_at_its_deadline(
        start_gateway: Callable[..., GatewayThread], make_link: Callable[..., EdgeLink]) -> None:
    gw = start_gateway(inference=EchoPolicy(delay=3.0))
    link = make_link(f"ws://127.0.0.1:{gw.port}")
    deadline = time.monotonic() + 5
    while not link.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    answers: list[object] = []
    asker = threading.Thread(target=lambda: answers.append(
        link.request_action("r1", OBS_SPEC.zeros(), 30.0)))
    asker.start()
    time.sleep(0.3)  # the request is with the (slow) policy
    t0 = time.monotonic()
    gw.stop()
    asker.join(15.0)
    assert answers == [None]
    assert time.monotonic() - t0 < 10.0  # the link going down ended the wait, not the 30 s
    assert link.stats["deadline_missed"] == 1


def test_a_wrong_token_is_refused_with_a_reason_and_touches_nothing(
        tmp_path: Path, start_gateway: Callable[..., GatewayThread],
        make_link: Callable[..., EdgeLink], caplog: pytest.LogCaptureFixture) -> None:
    gw = start_gateway()
    link = make_link(f"ws://127.0.0.1:{gw.port}", token=b"the-wrong-token-1234567")
    link.publish("r1", [numbered(0)])
    deadline = time.monotonic() + 5
    while link.fatal_error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert isinstance(link.fatal_error, AuthError)
    assert "wrong shared token" in str(link.fatal_error)
    assert gw.gateway.stats["rejected_auth"] == 1
    assert any("refused" in r.message for r in caplog.records)
    assert len(open_buffer(tmp_path / "buffer")) == 0
    assert link.spool.pending_count() == 1  # kept for when the token is fixed


def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_wss_with_a_self_signed_certificate(
        tmp_path: Path, start_gateway: Callable[..., GatewayThread],
        make_link: Callable[..., EdgeLink]) -> None:
    import ssl

    cert, key = self_signed_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    gw = start_gateway(ssl_context=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    link = make_link(f"wss://127.0.0.1:{gw.port}", ssl_context=client_ctx)
    link.publish("r1", [numbered(i) for i in range(20)])
    assert link.wait_acked(10.0), link.stats
    gw.stop()
    assert_exactly_once(tmp_path / "buffer", 20)


def test_a_spec_mismatch_is_refused_after_auth_with_both_digests(
        tmp_path: Path, start_gateway: Callable[..., GatewayThread],
        make_link: Callable[..., EdgeLink]) -> None:
    gw = start_gateway()
    link = make_link(f"ws://127.0.0.1:{gw.port}")
    link.close()
    link.spec_digest = "0000000000000000"
    link.start()
    deadline = time.monotonic() + 5
    while link.fatal_error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert link.fatal_error is not None
    assert "spec digest mismatch: edge 0000000000000000" in str(link.fatal_error)
    assert gw.gateway.stats["rejected_protocol"] == 1
