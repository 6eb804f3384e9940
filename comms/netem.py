"""A loopback TCP proxy that makes 127.0.0.1 look like a WAN: delay, jitter, bandwidth, loss, cuts.

TCP never loses bytes, so `loss` is modelled as a retransmission: a lost chunk arrives `rto`
seconds late (and everything behind it waits, as with a real in-order stream). `cut(seconds)`
pulls the cable: nothing flows, and connections open at the cut are reset when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass

from comms.connection import LoopThread

log = logging.getLogger(__name__)

CHUNK = 64 << 10


@dataclass(frozen=True)
class NetemProfile:
    """What the emulated path does to each direction."""

    delay: float = 0.0  # one-way seconds (RTT = 2 * delay)
    jitter: float = 0.0  # uniform +- seconds on top of delay (order is kept)
    bandwidth: float | None = None  # bytes per second per direction; None = unlimited
    loss: float = 0.0  # probability a chunk needs a retransmission
    rto: float = 0.2  # retransmission delay of a lost chunk
    queue_chunks: int = 256  # bytes in flight per direction are bounded by this many chunks


class _Pipe:
    """One direction of one connection: a reader that timestamps chunks, a writer that waits."""

    def __init__(self, proxy: NetemProxy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.proxy, self.reader, self.writer = proxy, reader, writer
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(proxy.profile.queue_chunks)
        self._last_due = 0.0
        self._line_free = 0.0

    def _due(self, size: int) -> float:
        p, now = self.proxy.profile, time.monotonic()
        due = now + p.delay + (self.proxy.rng.uniform(-p.jitter, p.jitter) if p.jitter else 0.0)
        if p.bandwidth:
            self._line_free = max(self._line_free, now) + size / p.bandwidth
            due = max(due, self._line_free + p.delay)
        if p.loss and self.proxy.rng.random() < p.loss:
            self.proxy.stats["lost_chunks"] += 1
            due += p.rto
        self._last_due = max(self._last_due, due)
        return self._last_due

    async def pump_in(self) -> None:
        while data := await self.reader.read(CHUNK):
            await self.queue.put((self._due(len(data)), data))
        await self.queue.put((self._last_due, b""))

    async def pump_out(self) -> None:
        while True:
            due, data = await self.queue.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.proxy.wait_link_up()
            if not data:
                self.writer.write_eof() if self.writer.can_write_eof() else self.writer.close()
                return
            self.writer.write(data)
            self.proxy.stats["bytes"] += len(data)
            await self.writer.drain()


class NetemProxy:
    """Listens on 127.0.0.1:`port` (0 = any free) and forwards to `target_port` through the path."""

    def __init__(self, target_port: int, profile: NetemProfile = NetemProfile(), *,
                 target_host: str = "127.0.0.1", seed: int = 0) -> None:
        self.target_host, self.target_port, self.profile = target_host, target_port, profile
        self.rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self._cut_until = 0.0
        self._conns: set[asyncio.Task[None]] = set()
        self._thread: LoopThread | None = None
        self._server: asyncio.Server | None = None

    def start(self) -> NetemProxy:
        self._thread = LoopThread("netem")
        self._server = self._thread.run(
            asyncio.start_server(self._accept, "127.0.0.1", 0), timeout=5.0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the proxy first"
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        if self._thread is None:
            return
        self._thread.run(self._shutdown(), timeout=5.0)
        self._thread.stop()
        self._thread = None

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    def set_profile(self, profile: NetemProfile) -> None:
        """Change the path for chunks read from now on."""
        self.profile = profile

    def cut(self, seconds: float) -> None:
        """Pull the cable for `seconds`; connections open now are reset when it comes back."""
        assert self._thread is not None, "start() the proxy first"
        self._thread.run(self._cut(seconds), timeout=5.0)

    async def _cut(self, seconds: float) -> None:
        self._cut_until = time.monotonic() + seconds
        self.stats["cuts"] += 1
        victims = set(self._conns)
        log.info("netem: link cut for %.1fs (%d connections)", seconds, len(victims))

        async def reset_later() -> None:
            await asyncio.sleep(seconds)
            for task in victims:
                task.cancel()

        asyncio.get_running_loop().create_task(reset_later())

    async def wait_link_up(self) -> None:
        while (left := self._cut_until - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    async def _accept(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        up_w: asyncio.StreamWriter | None = None
        try:
            await self.wait_link_up()
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), 5.0)
            self.stats["connections"] += 1
            pipes = [_Pipe(self, down_r, up_w), _Pipe(self, up_r, down_w)]
            await asyncio.gather(*(p.pump_in() for p in pipes), *(p.pump_out() for p in pipes))
        except (OSError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            for w in (down_w, up_w):
                if w is not None:
                    w.transport.abort()
