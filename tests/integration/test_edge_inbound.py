"""The edge's receive path against a scripted gateway: arrival order kept from the handshake on,
and a gateway that breaks the protocol after authenticating is dropped with the reason."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from comms import auth
from comms.connection import LoopThread
from comms.edge_link import EdgeLink
from comms.messages import (
    PROTOCOL_VERSION,
    Challenge,
    Control,
    Heartbeat,
    Hello,
    Welcome,
    decode_message,
)
from tests.integration.comms_helpers import TOKEN

Script = Callable[[ServerConnection], Awaitable[None]]


async def _authenticate(ws: ServerConnection) -> Hello:
    raw = await ws.recv()
    hello = decode_message(raw)
    assert isinstance(hello, Hello) and isinstance(raw, bytes)
    nonce = auth.new_nonce()
    await ws.send(Challenge(nonce).encode())
    await ws.recv()  # the edge's proof (this gateway does not check it)
    proof = auth.gateway_proof(TOKEN, nonce, hello.client_nonce, raw)
    ws.welcome = Welcome(PROTOCOL_VERSION, proof, {s: -1 for s in hello.streams})  # type: ignore[attr-defined]
    return hello


@pytest.fixture
def scripted_gateway() -> Iterator[Callable[[Script], int]]:
    """A websocket server that authenticates an edge, then runs a script on the connection."""
    thread = LoopThread("scripted-gateway")
    servers: list[Any] = []

    def start(script: Script) -> int:
        async def handler(ws: ServerConnection) -> None:
            await _authenticate(ws)
            await script(ws)
            await ws.wait_closed()

        async def listen() -> int:
            server = await serve(handler, "127.0.0.1", 0, compression=None)
            servers.append(server)
            return int(next(iter(server.sockets)).getsockname()[1])

        return thread.run(listen(), 5.0)

    yield start
    for server in servers:
        server.close()
    thread.stop()


def test_messages_keep_their_order_from_the_welcome_on(
        scripted_gateway: Callable[[Script], int], make_link: Callable[..., EdgeLink]) -> None:
    async def script(ws: ServerConnection) -> None:
        # the welcome and, right behind it, a burst the edge reads while still in its handshake
        for frame in [ws.welcome.encode()] + [  # type: ignore[attr-defined]
                Control(c, str(i)).encode() for i, c in enumerate(["pause", "resume", "estop"])]:
            await ws.send(frame)
        await asyncio.sleep(0.2)
        await ws.send(Control("release", "3").encode())

    commands: list[str] = []
    done = threading.Event()

    def on_control(control: Control) -> None:
        commands.append(control.command)
        if control.command == "release":
            done.set()

    make_link(f"ws://127.0.0.1:{scripted_gateway(script)}", on_control=on_control)
    assert done.wait(10.0)
    assert commands == ["pause", "resume", "estop", "release"]


@pytest.mark.parametrize("frame, why", [
    (b"\xc1\x00", "gateway sent a bad frame"),
    (Hello(PROTOCOL_VERSION, "x", "d", b"n" * 16, []).encode(), "unexpected hello message"),
    ("a text frame", "text or fragmented frame"),
    (iter([b"frag", b"mented"]), "text or fragmented frame"),
])
def test_a_gateway_breaking_the_protocol_is_dropped_with_the_reason(
        frame: object, why: str, scripted_gateway: Callable[[Script], int],
        make_link: Callable[..., EdgeLink], caplog: pytest.LogCaptureFixture) -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send(ws.welcome.encode())  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)
        await ws.send(frame)  # type: ignore[arg-type]

    held = threading.Event()
    link = make_link(f"ws://127.0.0.1:{scripted_gateway(script)}",
                     on_hold=lambda why: held.set())
    assert held.wait(10.0)
    deadline = time.monotonic() + 5
    while not any(why in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any(why in r.getMessage() for r in caplog.records), [r.message for r in caplog.records]
    assert link.stats["disconnects"] >= 1 and link.fatal_error is None  # it will dial again


def test_a_failing_handler_ends_the_connection_not_the_parser(
        scripted_gateway: Callable[[Script], int], make_link: Callable[..., EdgeLink],
        caplog: pytest.LogCaptureFixture) -> None:
    broken_in = threading.Event()

    async def script(ws: ServerConnection) -> None:
        await ws.send(ws.welcome.encode())  # type: ignore[attr-defined]
        assert await asyncio.to_thread(broken_in.wait, 10.0)
        await ws.send(Heartbeat(time.time()).encode())

    def broken(beat: Heartbeat) -> None:
        raise RuntimeError("a bug")

    held = threading.Event()
    link = make_link(f"ws://127.0.0.1:{scripted_gateway(script)}",
                     on_hold=lambda why: held.set())
    link._handlers[Heartbeat] = broken  # a stand-in for a bug in one of the link's handlers
    broken_in.set()
    assert held.wait(10.0)
    deadline = time.monotonic() + 5
    while link.stats["disconnects"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any("handling a message from the gateway failed" in r.getMessage()
               for r in caplog.records)
    assert link.stats["disconnects"] >= 1 and link.fatal_error is None
