"""Faults on a real link: a 10 s cable cut through the emulator, and a hostile client zoo."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from comms import auth
from comms.codec import encode
from comms.connection import LinkLimits
from comms.edge_link import EdgeLink
from comms.gateway import Gateway, GatewayThread
from comms.messages import PROTOCOL_VERSION, Authenticate, Hello, decode_message
from comms.netem import NetemProfile, NetemProxy
from comms.sink import StreamBatch
from robot_rl.runtime.buffer_sink import BufferSink
from tests.integration.comms_helpers import (
    ACTION_SPEC,
    DIGEST,
    FAST,
    OBS_SPEC,
    TOKEN,
    assert_exactly_once,
    numbered,
    open_buffer,
)


def produce(link: EdgeLink, count: int, rate_hz: float, stop: threading.Event) -> None:
    for i in range(count):
        if stop.is_set():
            return
        link.publish("r1", [numbered(i)], {0: True} if i % 25 == 24 else None)
        time.sleep(1.0 / rate_hz)


@pytest.mark.slow
def test_a_ten_second_cut_loses_and_duplicates_nothing(
        tmp_path: Path, start_gateway: Callable[..., GatewayThread],
        make_link: Callable[..., EdgeLink]) -> None:
    gw = start_gateway()
    proxy = NetemProxy(gw.port, NetemProfile(delay=0.01, jitter=0.005, loss=0.01)).start()
    held = threading.Event()
    try:
        link = make_link(f"ws://127.0.0.1:{proxy.port}", on_hold=lambda why: held.set())
        stop = threading.Event()
        producer = threading.Thread(target=produce, args=(link, 700, 50.0, stop))
        producer.start()
        time.sleep(2.0)
        assert link.connected and link.spool.acked("r1") > 0
        proxy.cut(10.0)
        assert held.wait(FAST.dead_after + 1.5), "the dead link was not detected in time"
        producer.join(30)
        assert link.wait_acked(30.0), link.stats
    finally:
        proxy.stop()
    assert link.stats["connects"] >= 2 and link.stats["disconnects"] >= 1
    gw.stop()
    assert_exactly_once(tmp_path / "buffer", 700)
    assert list(open_buffer(tmp_path / "buffer").episode_table()["length"]) == [25] * 28


async def hostile(port: int, frames: list[bytes | str]) -> tuple[int, str]:
    """Send `frames` as a client would and return the gateway's close code and reason."""
    async with connect(f"ws://127.0.0.1:{port}", compression=None, proxy=None,
                       max_size=None, open_timeout=3) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("unreachable")


def hello(**changes: object) -> bytes:
    fields = {"protocol": PROTOCOL_VERSION, "edge_id": "intruder", "spec_digest": "x",
              "client_nonce": b"n" * 32, "streams": ["r1"]}
    fields.update(changes)
    return encode({"v": PROTOCOL_VERSION, "type": "hello", "body": fields})


async def wrong_token_client(port: int) -> tuple[int, str]:
    async with connect(f"ws://127.0.0.1:{port}", compression=None, proxy=None) as ws:
        frame = Hello(PROTOCOL_VERSION, "intruder", "x", b"n" * 32, ["r1"]).encode()
        await ws.send(frame)
        challenge = decode_message(await ws.recv())
        proof = auth.edge_proof(b"not-the-token-123456", challenge.server_nonce,  # type: ignore[attr-defined]
                                b"n" * 32, frame)
        await ws.send(Authenticate(proof).encode())
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("the gateway answered a wrong token")


HOSTILE: dict[str, tuple[list[bytes | str], int, str]] = {
    "garbage": ([b"\xc1\xff\x00garbage"], 1002, "malformed frame"),
    "text": (["GET / HTTP/1.1"], 1002, "text frames"),
    "not a map": ([msgpack.packb([1, 2, 3])], 1002, "exactly the keys"),
    "wrong version": ([encode({"v": 99, "type": "hello", "body": {}})], 1002,
                      "protocol version 99"),
    "hello of version 7": ([hello(protocol=7)], 1002, "speaks protocol 7"),
    "data before auth": ([encode({"v": PROTOCOL_VERSION, "type": "ack",
                                  "body": {"stream_id": "r1", "last_seq": 5}})],
                         1008, "expected hello"),
    "oversized before auth": ([b"\x00" * (32 << 10)], 1009, "exceeds limit of 16384 bytes"),
    "bad hello field": ([hello(client_nonce=b"short")], 1002, "client_nonce"),
}


def test_hostile_clients_are_refused_with_reasons_while_an_edge_is_served(
        tmp_path: Path, start_gateway: Callable[..., GatewayThread],
        make_link: Callable[..., EdgeLink]) -> None:
    gw = start_gateway(limits=LinkLimits(max_message_bytes=1 << 20))
    link = make_link(f"ws://127.0.0.1:{gw.port}")
    stop = threading.Event()
    producer = threading.Thread(target=produce, args=(link, 200, 200.0, stop))
    producer.start()
    results = {name: asyncio.run(hostile(gw.port, frames))
               for name, (frames, _, _) in HOSTILE.items()}
    results["wrong token"] = asyncio.run(wrong_token_client(gw.port))
    producer.join(30)
    for name, (_, code, reason) in HOSTILE.items():
        assert results[name][0] == code, (name, results[name])
        assert reason in results[name][1], (name, results[name])
    assert results["wrong token"] == (
        1008, "edge 'intruder' failed authentication: wrong shared token")
    assert link.wait_acked(20.0), link.stats
    assert link.stats["disconnects"] == 0
    stats = gw.gateway.stats
    assert stats["rejected_auth"] == 2 and stats["rejected_protocol"] >= 5
    gw.stop()
    assert_exactly_once(tmp_path / "buffer", 200)
    assert TOKEN not in (tmp_path / "edge.spool").read_bytes()


async def authenticated_then_silent(port: int) -> tuple[int, str, float]:
    """An edge that authenticates, then reads but never sends: (close code, reason, seconds
    from its last frame to the gateway's close)."""
    async with connect(f"ws://127.0.0.1:{port}", compression=None, proxy=None) as ws:
        nonce = b"s" * 32
        frame = Hello(PROTOCOL_VERSION, "mute", DIGEST, nonce, ["r1"]).encode()
        await ws.send(frame)
        challenge = decode_message(await ws.recv())
        await ws.send(Authenticate(auth.edge_proof(
            TOKEN, challenge.server_nonce, nonce, frame)).encode())  # type: ignore[attr-defined]
        assert decode_message(await ws.recv()).kind == "welcome"
        last_sent = time.monotonic()
        try:
            while True:  # the gateway's heartbeats arrive; we answer none of them
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason, time.monotonic() - last_sent
    raise AssertionError("unreachable")


def test_a_silent_edge_is_dropped_once_dead_after_has_passed(
        start_gateway: Callable[..., GatewayThread]) -> None:
    gw = start_gateway()
    code, reason, after = asyncio.run(authenticated_then_silent(gw.port))
    assert code == 1011 and "no frame from the edge mute" in reason and "presumed dead" in reason
    assert FAST.dead_after <= after < FAST.dead_after + 1.0
    assert gw.gateway.stats["connections"] == 1


class SlowFirstCommit:
    """A buffer sink whose first commit stalls for twice `dead_after` (a slow disk)."""

    def __init__(self, sink: BufferSink) -> None:
        self.sink, self.stalled = sink, False

    def last_seq(self, stream: str) -> int:
        return self.sink.last_seq(stream)

    def commit_many(self, batches: Sequence[StreamBatch]) -> list[str | None]:
        if not self.stalled:
            self.stalled = True
            time.sleep(2 * FAST.dead_after)
        return self.sink.commit_many(batches)

    def close(self) -> None:
        self.sink.close()


def test_a_gateway_held_up_by_a_slow_commit_does_not_take_its_edge_for_dead(
        tmp_path: Path, make_link: Callable[..., EdgeLink]) -> None:
    sink = SlowFirstCommit(BufferSink(tmp_path / "buffer", OBS_SPEC, ACTION_SPEC))
    gw = GatewayThread(Gateway(sink, TOKEN, DIGEST, timings=FAST))  # type: ignore[arg-type]
    try:
        link = make_link(f"ws://127.0.0.1:{gw.port}")
        for i in range(300):  # one at a time: many small batches back up behind the commit
            link.publish("r1", [numbered(i)])
        assert link.wait_acked(30.0), link.stats
        assert sink.stalled
        assert link.stats["disconnects"] == 0  # its reader waited on us, not on the edge
    finally:
        gw.stop()
    assert_exactly_once(tmp_path / "buffer", 300)


def test_an_edge_keeps_at_most_window_bytes_in_flight_while_the_gateway_commits(
        tmp_path: Path, make_link: Callable[..., EdgeLink]) -> None:
    """What a gateway holds per edge is bounded by the edge's window in bytes, so a gateway
    behind on its commits holds a bounded amount per edge however long the backlog."""
    sink = SlowFirstCommit(BufferSink(tmp_path / "buffer", OBS_SPEC, ACTION_SPEC))
    gw = GatewayThread(Gateway(sink, TOKEN, DIGEST, timings=FAST))  # type: ignore[arg-type]
    window = 16 << 10
    try:
        link = make_link(f"ws://127.0.0.1:{gw.port}", limits=LinkLimits(window_bytes=window))
        for i in range(100):
            link.publish("r1", [numbered(i)])
        entry = link.spool.unacked_bytes("r1", 0)
        assert 100 * entry > 4 * window  # the backlog is several windows
        time.sleep(FAST.dead_after)  # the first commit is still stalled
        assert sink.stalled and link.spool.acked("r1") == -1
        assert 0 < link.stats["sent"] * entry <= window + entry, link.stats
        assert link.wait_acked(30.0), link.stats
        assert link.stats["disconnects"] == 0
    finally:
        gw.stop()
    assert_exactly_once(tmp_path / "buffer", 100)
