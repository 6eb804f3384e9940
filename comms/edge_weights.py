"""An edge link's weights: a WeightReceiver fed by the link (offers and chunks on the websocket,
transfers on the bulk channel the gateway offers), asked for on every (re)connect, and polled by
the control loop between two steps."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from comms.bulk import BulkReader
from comms.messages import BulkTicket, Message, WeightChunk, WeightOffer
from comms.weight_sync import WeightSet
from comms.weight_sync_budget import ByteBudget
from comms.weight_sync_receiver import WeightReceiver

log = logging.getLogger(__name__)


class EdgeWeights:
    """What an EdgeLink holds for weight sync; the link calls `connected`, `handle`, `tick` and
    `disconnected` on its loop, the control loop calls `poll` on its own thread."""

    MESSAGES = (WeightOffer, WeightChunk, BulkTicket)

    def __init__(self, budget: ByteBudget | None = None, stall_s: float = 2.0,
                 max_version_bytes: int = 64 << 30, bulk: bool = True,
                 on_ready: Callable[[], None] | None = None) -> None:
        """`on_ready` runs (on the apply thread) each time a verified version waits for `poll`;
        `bulk=False` keeps weights on the websocket even when the gateway offers a channel."""
        self.receiver = WeightReceiver(self._send, budget, stall_s=stall_s, on_ready=on_ready,
                                       max_version_bytes=max_version_bytes)
        self.use_bulk = bulk
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: Connection | None = None
        self._host = "127.0.0.1"
        self._ssl: ssl.SSLContext | None = None
        self._bulk: BulkReader | None = None
        self._sends: set[asyncio.Task[None]] = set()

    def connected(self, ws: Connection, url: str, ssl_context: ssl.SSLContext | None) -> None:
        """On the link's loop, once authenticated: say what is held, so the newest version
        comes as a patch against it."""
        self._loop, self._ws = asyncio.get_running_loop(), ws
        self._host, self._ssl = urlsplit(url).hostname or "127.0.0.1", ssl_context
        self.receiver.subscribe("connected")

    def disconnected(self) -> None:
        self._ws = None
        if self._bulk is not None:
            self._bulk.close()
            self._bulk = None

    def handle(self, msg: Message) -> None:
        """A weight message from the authenticated gateway."""
        if isinstance(msg, BulkTicket):
            if self.use_bulk:
                if self._bulk is not None:
                    self._bulk.close()
                self._bulk = BulkReader(self._host, msg.port, msg.ticket, self.receiver,
                                        self._ssl)
            return
        self.receiver.handle(msg)

    def tick(self) -> None:
        """From the link's heartbeat: re-request what a stalled transfer lost."""
        self.receiver.tick()

    def poll(self) -> WeightSet | None:
        """The newest verified version, swapped in now (call between two control steps), or
        None when nothing new came; the link keeps the last one while it is down."""
        return self.receiver.poll()

    @property
    def current(self) -> WeightSet | None:
        return self.receiver.current

    def close(self) -> None:
        self.disconnected()
        self.receiver.close()

    def _send(self, msg: Message) -> None:
        """From any thread: send `msg` to the gateway if the link is up (else the next
        connect's subscription says the same)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._send_now, msg.encode())

    def _send_now(self, frame: bytes) -> None:
        ws = self._ws
        if ws is None:
            return
        task = asyncio.get_running_loop().create_task(self._send_frame(ws, frame))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_frame(self, ws: Connection, frame: bytes) -> None:
        try:
            await ws.send(frame)
        except ConnectionClosed:
            pass
