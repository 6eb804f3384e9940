"""A site relay: a small process on a site's LAN that robots use as their gateway.

Weights: the relay holds one authenticated link of its own to the cloud gateway (a weights-only
edge), so each version crosses the wide-area link once; it serves every version it verified to
its robots like a gateway does (bulk channel or chunks, patches against what each robot holds).

Everything else passes through untouched: each robot's websocket is relayed frame by frame to
the cloud on a connection of its own, so a robot authenticates end to end with its own key (the
relay holds no robot's key), its transitions are committed and acked by the cloud exactly as
without a relay (its spool stays the source of truth, acks come only after the cloud's commit),
and control and remote actions keep working. The relay only answers a robot's weight requests
itself and drops weight traffic from the cloud to a robot (a robot never asks the cloud).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from comms.adaptive import LinkMeter
from comms.codec import CodecError, decode
from comms.connection import (
    CLOSE_PROTOCOL,
    CLOSE_TRY_AGAIN,
    DEFAULT_LIMITS,
    DEFAULT_TIMINGS,
    LinkLimits,
    LinkTimings,
    clip_reason,
)
from comms.edge_link import EdgeLink
from comms.edge_weights import EdgeWeights
from comms.messages import WEIGHTS_ONLY, Hello, decode_message
from comms.spool import Spool
from comms.weight_service import WeightService
from robot_rl.core import CommsError

log = logging.getLogger(__name__)

ANSWERED_HERE = frozenset({"weight_request", "weight_applied"})  # robot -> relay, not forwarded
NOT_FOR_ROBOTS = frozenset({"weight_offer", "weight_chunk", "bulk_ticket"})  # cloud -> robot


def message_kind(frame: bytes | str) -> str:
    """The `type` of a frame ("" if it has none): read to route it, the body is left as is."""
    try:
        envelope = decode(frame) if isinstance(frame, bytes) else None
    except CodecError:
        return ""
    kind = envelope.get("type") if isinstance(envelope, dict) else None
    return kind if isinstance(kind, str) else ""


class SiteRelay:
    """Serves robots on `host:port` (ws, or wss with `ssl_context`) in front of the cloud
    gateway at `upstream_url`; `start()` opens its own weights link first."""

    def __init__(self, upstream_url: str, token: bytes, relay_id: str, weights: WeightService,
                 *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None,
                 upstream_ssl: ssl.SSLContext | None = None,
                 timings: LinkTimings = DEFAULT_TIMINGS, limits: LinkLimits = DEFAULT_LIMITS
                 ) -> None:
        self.upstream_url, self.host, self._port = upstream_url, host, port
        self._ssl, self._upstream_ssl = ssl_context, upstream_ssl
        self.timings, self.limits, self.weights = timings, limits, weights
        self._state = tempfile.TemporaryDirectory(prefix="robot-rl-relay-")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.upstream = EdgeLink(
            upstream_url, token, relay_id, WEIGHTS_ONLY, Spool(Path(self._state.name) / "spool"),
            ssl_context=upstream_ssl, timings=timings, limits=limits,
            weights=EdgeWeights(on_ready=self._upstream_ready))
        self.robots: dict[str, ServerConnection] = {}
        self._server: Server | None = None

    async def start(self) -> None:
        """Open the weights link and serve robots (the link reconnects by itself later)."""
        self._loop = asyncio.get_running_loop()
        self.weights.start(self._loop)
        self.upstream.start()
        self._server = await serve(
            self._robot, self.host, self._port, ssl=self._ssl, compression=None,
            max_size=self.limits.max_message_bytes, max_queue=self.limits.queue_frames,
            ping_interval=None, open_timeout=self.timings.handshake, close_timeout=1.0)

    @property
    def port(self) -> int:
        if self._server is None:
            raise CommsError("the relay is not started: call start() first")
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), self.timings.handshake)
        await asyncio.to_thread(self.upstream.close)
        self.upstream.spool.close()
        self.weights.close()
        self._state.cleanup()

    def _upstream_ready(self) -> None:
        """On the receiver's thread: a verified version waits; serve it to the robots."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._advance)

    def _advance(self) -> None:
        ws = self.upstream.poll_weights()  # acknowledged upstream: the next comes as a patch
        if ws is not None:
            self.weights.publish_set(ws)

    # -- one robot ---------------------------------------------------------------------------------
    async def _robot(self, down: ServerConnection) -> None:
        try:
            first = await asyncio.wait_for(down.recv(), self.timings.handshake)
            hello = decode_message(first)
            if not isinstance(hello, Hello):
                raise CommsError(f"expected hello, got {hello.kind}")
        except (CommsError, TimeoutError, ConnectionClosed) as exc:
            await self._close(down, CLOSE_PROTOCOL, f"relay: {exc}")
            return
        robot = hello.edge_id
        try:
            up = await connect(
                self.upstream_url, ssl=self._upstream_ssl, compression=None, proxy=None,
                max_size=self.limits.max_message_bytes, max_queue=self.limits.queue_frames,
                open_timeout=self.timings.handshake, ping_interval=None, close_timeout=1.0)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            log.warning("relay: cannot reach the gateway for %s: %s", robot, exc)
            await self._close(down, CLOSE_TRY_AGAIN, f"relay cannot reach the gateway: {exc}")
            return
        log.info("relay: robot %s connected; relaying it to %s", robot, self.upstream_url)
        try:
            await up.send(first)
            await self._pump(robot, down, up)
        finally:
            if self.robots.get(robot) is down:
                del self.robots[robot]
                self.weights.detach(robot)
            await self._close(up, 1000, "robot gone")

    async def _pump(self, robot: str, down: ServerConnection, up: ClientConnection) -> None:
        """Frames both ways until either side ends; the other is closed with its code."""

        async def upward() -> None:
            async for frame in down:
                if robot in self.robots and message_kind(frame) in ANSWERED_HERE:
                    await self.weights.handle(robot, decode_message(frame))
                else:
                    await up.send(frame)

        async def downward() -> None:
            async for frame in up:
                kind = message_kind(frame)
                if kind in NOT_FOR_ROBOTS:
                    continue
                if kind == "welcome":  # the cloud authenticated this robot: weights from here,
                    self.robots[robot] = down  # before it can ask (the welcome tells it to)
                    self.weights.attach(robot, down, LinkMeter())
                await down.send(frame)

        tasks = [asyncio.create_task(upward()), asyncio.create_task(downward())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for one, other in ((up, down), (down, up)):
            code = one.close_code
            if code is not None:  # pass the reason on (a refused token, say)
                sendable = code not in (1005, 1006, 1015)  # "no status" codes are not sent
                await self._close(other, code if sendable else CLOSE_TRY_AGAIN,
                                  one.close_reason or "the other side went away")

    @staticmethod
    async def _close(ws: ServerConnection | ClientConnection, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(ws.close(code, clip_reason(reason)), 2.0)
        except (TimeoutError, ConnectionClosed, OSError):
            pass
