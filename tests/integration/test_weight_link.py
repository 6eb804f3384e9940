"""Weight sync on the real link: bulk channel, websocket chunks and TLS; a reader never sees a
mixed version; a bulk channel that breaks mid-transfer costs only time; weights from a peer
that did not authenticate are never applied."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from comms import bulk
from comms.bulk import MAGIC, BulkReader, BulkServer
from comms.connection import LoopThread
from comms.edge_link import EdgeLink
from comms.edge_weights import EdgeWeights
from comms.gateway import GatewayThread
from comms.messages import PROTOCOL_VERSION, Challenge, Welcome
from comms.weight_service import WeightService
from comms.weight_sync import WeightSet, encode_transfer
from comms.weight_sync_receiver import WeightReceiver
from comms.weight_sync_sender import WeightSender
from robot_rl.core import AuthError, CommsError
from tests.integration.test_link import self_signed_cert

Start = Callable[..., GatewayThread]
Link = Callable[..., EdgeLink]


def model(version: int, rows: int = 100) -> dict[str, np.ndarray]:
    """Ten layers whose every element equals `version` (a mix of two versions shows)."""
    return {f"layer{i}": np.full((rows, 1000), version, np.float32) for i in range(10)}


def wait_version(link: EdgeLink, version: int, timeout: float = 20.0) -> WeightSet:
    deadline = time.monotonic() + timeout
    while True:
        got = link.poll_weights()
        if got is not None and got.version == version:
            return got
        assert time.monotonic() < deadline, link.weights.receiver.stats  # type: ignore[union-attr]
        time.sleep(0.005)


def test_a_reader_never_sees_a_mixed_version_while_versions_stream_over_the_bulk_channel(
        start_gateway: Start, make_link: Link) -> None:
    service = WeightService(WeightSender("patch"), bulk=BulkServer())
    gw = start_gateway(weights=service)
    link = make_link(f"ws://127.0.0.1:{gw.port}", weights=EdgeWeights())
    seen, bad = set(), []
    stop = threading.Event()

    def reader() -> None:  # another thread reading what the control loop acts with
        while not stop.is_set():
            ws = link.weights.current  # type: ignore[union-attr]
            if ws is not None:
                seen.add(ws.version)
                if not ws.intact() or any(np.any(a != ws.version) for a in ws.tensors.values()):
                    bad.append(ws.version)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 9):
            gw.publish_weights(model(version), version)
            wait_version(link, version)
    finally:
        stop.set()
        thread.join()
    assert bad == [] and len(seen) >= 4
    deadline = time.monotonic() + 5  # (the count follows the last send's completion)
    while service.stats["pushed_bulk"] < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.stats["pushed_bulk"] == 8 and service.stats["pushed_websocket"] == 0


def test_a_bulk_channel_that_breaks_mid_transfer_falls_back_to_the_websocket(
        start_gateway: Start, make_link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    def cut_halfway(self: bulk.BulkPeer, transfer: object) -> None:
        offset, data = transfer.parts[0]  # type: ignore[attr-defined]
        frame = transfer.offer.encode()  # type: ignore[attr-defined]
        self._sock.sendall(bulk._HEADER.pack(len(frame)) + frame + bytes(data[:len(data) // 2]))
        raise OSError("cable pulled")

    monkeypatch.setattr(bulk.BulkPeer, "_write", cut_halfway)
    service = WeightService(WeightSender("full"), bulk=BulkServer())
    gw = start_gateway(weights=service)
    link = make_link(f"ws://127.0.0.1:{gw.port}", weights=EdgeWeights())
    gw.publish_weights(model(1), 1)
    got = wait_version(link, 1)
    assert all(np.all(a == 1) for a in got.tensors.values()) and got.intact()
    assert service.stats["bulk_failed"] == 1 and service.stats["pushed_websocket"] == 1


def test_weights_travel_in_chunks_when_the_edge_takes_no_bulk_channel_and_over_tls(
        tmp_path: Path, start_gateway: Start, make_link: Link) -> None:
    import ssl

    cert, key = self_signed_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    service = WeightService(WeightSender("patch"), bulk=BulkServer(ssl_context=server_ctx))
    gw = start_gateway(weights=service, ssl_context=server_ctx)
    over_tls = make_link(f"wss://127.0.0.1:{gw.port}", ssl_context=client_ctx,
                         weights=EdgeWeights())
    gw.publish_weights(model(1), 1)
    wait_version(over_tls, 1)
    assert gw.weight_stats()["edge-1"]["via"] == "bulk"  # the bulk channel, under TLS
    over_tls.close()
    chunks = make_link(f"wss://127.0.0.1:{gw.port}", ssl_context=client_ctx,
                       weights=EdgeWeights(bulk=False))
    gw.publish_weights(model(2), 2)
    got = wait_version(chunks, 2)
    assert got.intact() and service.stats["pushed_websocket"] == 1
    assert gw.weight_stats()["edge-1"]["via"] == "websocket"


def forged_gateway(script: str) -> tuple[LoopThread, int]:
    """A websocket server that knows no token: after the challenge it sends a welcome with a
    made-up proof ("bad_welcome"), or weights instead of a challenge ("weights_first"); in both
    it streams a whole valid version the moment it can."""
    ws_set = WeightSet.of(model(5, rows=10), 5)
    transfer = encode_transfer(ws_set, "full", 1, chunk_bytes=64 << 10)
    frames = [transfer.offer.encode()] + [c.encode() for c in transfer.chunks()]

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # hello
        if script == "bad_welcome":
            await ws.send(Challenge(b"n" * 32).encode())
            await ws.recv()
            await ws.send(Welcome(PROTOCOL_VERSION, b"p" * 32, {}).encode())
        for frame in frames:
            await ws.send(frame)
        await ws.wait_closed()

    thread = LoopThread("forged")

    async def listen() -> int:
        server = await serve(handler, "127.0.0.1", 0, compression=None)
        return int(next(iter(server.sockets)).getsockname()[1])

    return thread, thread.run(listen(), 5)


@pytest.mark.parametrize("script", ["bad_welcome", "weights_first"])
def test_weights_from_a_peer_that_did_not_authenticate_are_never_applied(
        make_link: Link, script: str) -> None:
    thread, port = forged_gateway(script)
    try:
        link = make_link(f"ws://127.0.0.1:{port}", weights=EdgeWeights())
        deadline = time.monotonic() + 10
        while link.fatal_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # anything still in flight would land now
        assert isinstance(link.fatal_error, AuthError if script == "bad_welcome" else CommsError)
        assert link.poll_weights() is None and link.weights.current is None  # type: ignore[union-attr]
        assert link.weights.receiver.stats["offers"] == 0  # type: ignore[union-attr]
    finally:
        thread.stop()


def test_a_bulk_channel_without_the_ticket_is_refused_both_ways() -> None:
    opened: list[object] = []
    server = BulkServer(timeout=2.0)
    try:
        ticket = server.issue("edge-1", opened.append)
        with socket.create_connection(("127.0.0.1", server.port), 2) as intruder:
            intruder.sendall(MAGIC + ticket[:16] + b"x" * 32)  # the ticket's name, not its secret
            assert intruder.recv(64) == b""  # closed without a word
        receiver = WeightReceiver(lambda msg: None)
        forged = bytes(32)  # an edge handed a ticket the server never issued
        reader = BulkReader("127.0.0.1", server.port, forged, receiver)
        deadline = time.monotonic() + 5
        while reader.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        reader.close()
        assert isinstance(reader.error, ConnectionError)  # the server hung up on it
        assert opened == [] and receiver.stats["offers"] == 0
        receiver.close()
    finally:
        server.close()


def test_an_edge_asking_a_gateway_without_weights_keeps_its_own_and_streams_on(
        tmp_path: Path, start_gateway: Start, make_link: Link) -> None:
    from tests.integration.comms_helpers import assert_exactly_once, numbered

    gw = start_gateway()
    link = make_link(f"ws://127.0.0.1:{gw.port}", weights=EdgeWeights())
    link.publish("r1", [numbered(i) for i in range(10)])
    assert link.wait_acked(10.0), link.stats
    assert link.stats["errors_no_weights"] == 1 and link.fatal_error is None
    assert link.poll_weights() is None
    gw.stop()
    assert_exactly_once(tmp_path / "buffer", 10)
