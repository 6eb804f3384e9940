"""What both ends of the link share: timings, limits, close codes, timed I/O, a loop thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from websockets.asyncio.connection import Connection

from comms.adaptive import LinkMeter
from comms.messages import Message, decode_message
from robot_rl.core import CommsError

T = TypeVar("T")

# Close codes of RFC 6455 used with a human-readable reason.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_POLICY = 1008  # authentication failed
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013  # the gateway cannot serve now (its buffer, a slow handshake): retry
MAX_REASON_BYTES = 123


@dataclass(frozen=True)
class LinkTimings:
    """Every await on the link is bounded by one of these (seconds)."""

    heartbeat: float = 0.5  # send a heartbeat this often
    dead_after: float = 2.5  # no frame for this long: the link is dead
    handshake: float = 5.0  # open + hello ... welcome
    send: float = 5.0  # one handshake frame or heartbeat onto the socket
    commit: float = 60.0  # one durable commit on the gateway
    inline_act: float = 0.005  # a CPU-light policy slower than this leaves the event loop


@dataclass(frozen=True)
class LinkLimits:
    """Sizes that bound memory on both ends instead of unbounded queues."""

    max_message_bytes: int = 64 << 20  # frames above this close the connection (1009)
    preauth_message_bytes: int = 16 << 10  # the same, until the edge has authenticated
    max_unauthenticated: int = 64  # connections mid-handshake; more are refused with HTTP 503
    batch_items: int = 64  # transitions per TransitionBatch
    # bytes of transitions per TransitionBatch: a frame must arrive whole within `dead_after` even
    # when a busy gateway reads each of many edges at a few MB/s (its reader sees no frame until
    # the last byte is in, and would take the edge for dead)
    batch_bytes: int = 1 << 20
    window_items: int = 256  # transitions sent but not yet acked, per stream
    # bytes of transitions sent but not yet acked, per stream (at least one transition): what
    # the gateway holds per edge, decoded, while its commit runs
    window_bytes: int = 16 << 20
    queue_frames: int = 8  # frames buffered per connection before the reader stops reading


DEFAULT_TIMINGS = LinkTimings()
DEFAULT_LIMITS = LinkLimits()


def clip_reason(reason: str) -> str:
    """A close reason that fits a close frame (123 bytes of UTF-8)."""
    data = reason.encode()
    return reason if len(data) <= MAX_REASON_BYTES else data[: MAX_REASON_BYTES - 3].decode(
        "utf-8", "ignore") + "..."


async def send(ws: Connection, frame: bytes | Message, timeout: float) -> None:
    """Send one frame or raise CommsError when the socket does not take it within `timeout`.

    For the handshake and heartbeats; the other frames of an established connection go out with
    a plain `ws.send`, bounded by `heartbeat` instead of a timer per frame."""
    data = frame.encode() if isinstance(frame, Message) else frame
    try:
        async with asyncio.timeout(timeout):  # no extra task, unlike wait_for
            await ws.send(data)
    except TimeoutError:
        raise CommsError(f"sending a frame took over {timeout}s: the peer is not reading") from None


class Liveness:
    """How long a connection's reader has been waiting for its peer's next frame.

    Only time spent waiting counts: a reader held up by its own backpressure (a slow commit)
    is not a silent peer."""

    def __init__(self) -> None:
        self._waiting_since: float | None = time.monotonic()

    def silent_for(self, now: float) -> float:
        return 0.0 if self._waiting_since is None else now - self._waiting_since

    def heard(self) -> None:
        """A frame arrived and was handled at once: the wait for the next one starts now."""
        self._waiting_since = time.monotonic()

    async def receive(self, ws: Connection) -> Message:
        """The next message, decoded (no timer: `heartbeat` notices a silent peer)."""
        self._waiting_since = time.monotonic()
        frame = await ws.recv()
        self._waiting_since = None
        return decode_message(frame)


async def heartbeat(ws: Connection, liveness: Liveness, timings: LinkTimings, peer: str,
                    meter: LinkMeter, on_beat: Callable[[], None] | None = None) -> None:
    """Beat every `timings.heartbeat` seconds (each beat echoing the peer's last one into
    `meter`'s round trip; `on_beat` runs after each) and raise CommsError once the reader has
    waited `timings.dead_after` seconds for a frame, or a beat does not leave within `timings.send`.

    This one task bounds every other await of the connection: the connection's tasks end with
    it, which cancels a send stuck behind a peer that stopped reading and a read of a dead peer.
    """
    next_beat = 0.0
    while True:
        now = time.monotonic()
        silent = liveness.silent_for(now)
        if silent >= timings.dead_after:
            raise CommsError(f"no frame from the {peer} for {silent:.1f}s: link presumed dead")
        if now >= next_beat:
            await send(ws, meter.beat(), timings.send)
            next_beat = now + timings.heartbeat
            if on_beat is not None:
                on_beat()
        await asyncio.sleep(min(next_beat, now - silent + timings.dead_after) - time.monotonic())


class LoopThread:
    """An asyncio loop in a daemon thread, so synchronous code (a control loop) can use the link."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run `coro` on the loop and wait for its result, at most `timeout` seconds (None: as
        long as it takes). A wait that ends early (timeout, Ctrl-C) cancels `coro` and gives it
        up to 5 s to finish its clean-up before the exception propagates."""
        ended = threading.Event()

        async def guarded() -> T:
            try:
                return await coro
            finally:
                ended.set()

        future = asyncio.run_coroutine_threadsafe(guarded(), self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            ended.wait(5.0)
            raise

    def stop(self, timeout: float = 5.0) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
