"""The edge's receive path: each message is handled as websockets parses it, in arrival order.

websockets queues every message for `recv()`; with a reader task taking them from there, a
remote action reached the control loop waiting for it two event-loop passes after its bytes
arrived, and paid for the queue on the way. Here a message is decoded and handled inside the
parse, so the waiting control loop runs one pass later, as after a bare `recv()` (about 15-20 us
less per round trip on a 2-core VM, benchmarks/obs_roundtrip.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from comms.codec import CodecError
from comms.connection import CLOSE_PROTOCOL, Liveness, clip_reason
from comms.messages import Message, ProtocolError, decode_message
from robot_rl.core import CommsError

log = logging.getLogger(__name__)


class DirectConnection(ClientConnection):
    """A client connection that hands every single-frame binary message to its `inbound` as it
    is parsed; other frames (text, fragments, pings, close) take websockets' own path."""

    inbound: Inbound | None = None

    def process_event(self, event: Event) -> None:
        inbound = self.inbound
        if (inbound is not None and isinstance(event, Frame) and event.opcode is Opcode.BINARY
                and event.fin):
            inbound.arrived(bytes(event.data))
        else:
            super().process_event(event)


class Inbound:
    """One connection's incoming messages: queued while the handshake takes them one at a time
    (`next`), then, from `serve(handle)` on, handed to `handle` as they arrive, the queued ones
    first, so the order in which the peer sent them is kept throughout.

    A frame that does not decode, or a message `handle` refuses (CommsError), fails the
    connection: it is closed with a reason and `failure` says what happened."""

    def __init__(self, ws: DirectConnection, liveness: Liveness, peer: str) -> None:
        self._ws, self.liveness, self._peer = ws, liveness, peer
        self._queue: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._handle: Callable[[Message], None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.failure: CommsError | None = None
        ws.inbound = self

    def arrived(self, data: bytes) -> None:
        self.liveness.heard()
        if self.failure is not None:
            return
        if self._handle is None:
            self._queue.append(data)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
        else:
            self._dispatch(self._handle, data)

    def _dispatch(self, handle: Callable[[Message], None], data: bytes) -> None:
        try:
            handle(decode_message(data))
        except CodecError as exc:
            self._fail(f"the {self._peer} sent a bad frame: {exc}", "malformed frame")
        except CommsError as exc:
            self._fail(str(exc), str(exc))
        except Exception as exc:  # a bug in a handler: end this connection, not the parser
            log.exception("handling a message from the %s failed", self._peer)
            self._fail(f"handling a message from the {self._peer} failed: {exc!r}",
                       "internal error")

    def _fail(self, why: str, reason: str) -> None:
        self.failure = CommsError(why)
        self._closing = asyncio.get_running_loop().create_task(
            self._ws.close(CLOSE_PROTOCOL, clip_reason(reason)))

    async def next(self) -> Message:
        """The next message (for the handshake); ConnectionClosed once the peer has hung up."""
        while not self._queue:
            self._waiter = asyncio.get_running_loop().create_future()
            closed = asyncio.ensure_future(self._ws.recv())  # ends only when the connection does
            try:
                await asyncio.wait({self._waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not closed.done():  # (cancelling recv() loses nothing) ...
                    closed.cancel()
                    await asyncio.wait({closed})  # ... and it must end before the next recv()
            if not closed.cancelled():
                closed.result()  # raises ConnectionClosed
                raise ProtocolError(f"the {self._peer} sent a text or fragmented frame; "
                                    "every message is one binary frame")
        return decode_message(self._queue.popleft())

    def serve(self, handle: Callable[[Message], None]) -> None:
        """Hand the queued messages, then every later one, to `handle` as they arrive."""
        while self._queue and self.failure is None:
            self._dispatch(handle, self._queue.popleft())
        self._handle = handle

    async def closed(self) -> None:
        """Wait for the connection to end; raise why (the recorded failure, ConnectionClosed,
        or a frame outside the protocol)."""
        try:
            await self._ws.recv()  # binary messages never get here: only the end does
        except Exception:
            if self.failure is not None:
                raise self.failure from None
            raise
        raise CommsError(f"the {self._peer} sent a text or fragmented frame; every message is "
                         "one binary frame")
