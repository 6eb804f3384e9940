"""The serving side of weight sync on a link (a gateway's, or a site relay's for its robots).

Versions are published from any thread; copying happens on the caller's thread, hashing and
encoding on a worker thread, never on the event loop. Each edge that subscribed (it said what
it holds) is pushed the newest version encoded against what it holds, over its bulk channel when
it opened one, else as checksummed chunks on its websocket; one transfer is in flight per edge,
and versions published meanwhile are coalesced into the next push. With SyncBounds, each edge's
mode, chunk size and sync interval follow its measured link (comms.adaptive).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from comms.adaptive import LinkMeter, SyncBounds, SyncPlan, plan_sync
from comms.bulk import BulkPeer, BulkServer
from comms.messages import BulkTicket, Message, WeightApplied, WeightRequest
from comms.weight_sync import Transfer, WeightSet
from comms.weight_sync_sender import WeightSender
from robot_rl.core import CommsError
from robot_rl.core.priority import background_priority

log = logging.getLogger(__name__)
ENCODE_BATCH = 8  # chunks encoded per hop to the worker thread
BULK_OPEN_S = 1.0  # how long a first push waits for the bulk channel just offered


@dataclass
class _Peer:
    """One subscribed (or not yet) edge and its push state."""

    peer_id: str
    ws: Connection
    meter: LinkMeter
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    subscribed: bool = False
    bulk: BulkPeer | None = None
    sent: tuple[int, int] | None = None  # (version, base version) of the transfer in flight
    sent_at: float = -1e9
    sent_bytes: int = 0
    bulk_due: float = 0.0  # until then, wait for the bulk channel it was offered
    plan: SyncPlan | None = None
    mode: str | None = None  # of the last transfer pushed
    task: asyncio.Task[None] | None = None


class WeightService:
    """Keeps every subscribed edge on the newest version of `sender`'s weights."""

    def __init__(self, sender: WeightSender, *, bulk: BulkServer | None = None,
                 bounds: SyncBounds | None = None, answer_timeout: float = 30.0) -> None:
        self.sender, self.bulk, self.bounds = sender, bulk, bounds
        self.answer_timeout = answer_timeout
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="weights",
                                        initializer=background_priority)
        self._peers: dict[str, _Peer] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._version_lock = threading.Lock()
        self._last_version: int | None = None
        self.stats: dict[str, int] = {"pushed_bulk": 0, "pushed_websocket": 0, "bulk_failed": 0,
                                      "chunks_resent": 0, "bytes_sent": 0}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the event loop the edges' connections run on."""
        self._loop = loop

    def close(self) -> None:
        for peer in list(self._peers.values()):
            self.detach(peer.peer_id)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.bulk is not None:
            self.bulk.close()

    # -- publishing (any thread) -------------------------------------------------------------------
    def publish(self, weights: Mapping[str, np.ndarray], version: int, copy: bool = True
                ) -> None:
        """Make `weights` version `version` and push it to every subscribed edge; ValueError if
        `version` is not newer than the last one published. The arrays are copied here unless
        `copy=False` hands them over: only for arrays nothing writes to afterwards (what
        Policy.get_weights returns), which spares copying a large model once more."""
        published_at = time.monotonic()
        with self._version_lock:
            if self._last_version is not None and version <= self._last_version:
                raise ValueError(f"weights version {version} is not newer than version "
                                 f"{self._last_version}, published before")
            self._last_version = version
        tensors = {}
        for name, arr in weights.items():
            tensors[name] = mine = np.array(arr, order="C", copy=True if copy else None)
            mine.setflags(write=False)
        self._pool.submit(self._install, tensors, version, published_at)

    def publish_set(self, ws: WeightSet) -> None:
        """Serve an already verified WeightSet (a relay's upstream version) as the newest."""
        with self._version_lock:
            self._last_version = ws.version
        self._pool.submit(self._install, ws, ws.version, time.monotonic())

    def _install(self, weights: dict[str, np.ndarray] | WeightSet, version: int,
                 published_at: float) -> None:
        """On the worker: digest the version and make it the sender's newest."""
        ws = weights if isinstance(weights, WeightSet) else WeightSet.trusted(weights, version)
        self.sender.publish(ws, version, published_at)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for peer in self._peers.values():
            peer.wake.set()

    # -- edges (on the loop) -----------------------------------------------------------------------
    def attach(self, peer_id: str, ws: Connection, meter: LinkMeter) -> None:
        """An edge authenticated on `ws`; it is pushed nothing until it subscribes."""
        self.detach(peer_id)
        peer = self._peers[peer_id] = _Peer(peer_id, ws, meter)
        peer.task = asyncio.get_running_loop().create_task(self._push_loop(peer))

    def detach(self, peer_id: str) -> None:
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            return
        if peer.task is not None:
            peer.task.cancel()
        if peer.bulk is not None:
            peer.bulk.close()

    async def handle(self, peer_id: str, msg: Message) -> None:
        """A WeightRequest (subscribe, resend chunks, or send against what it holds) or a
        WeightApplied from an attached edge."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        if not isinstance(msg, WeightRequest | WeightApplied):
            raise TypeError(f"weights take requests and applied notes, not {msg.kind}")
        self.sender.note(peer_id, msg)
        if isinstance(msg, WeightApplied) and msg.receive_s > 0 and peer.sent is not None \
                and msg.version == peer.sent[0]:
            peer.meter.transferred(peer.sent_bytes, msg.receive_s)  # timed where it arrived
        transfer = self.sender.resendable(msg) if isinstance(msg, WeightRequest) else None
        if transfer is not None:  # chunks lost on the way (or a bulk channel that broke)
            self.stats["chunks_resent"] += len(msg.missing)
            await self._send_frames(peer, [
                (lambda s=seq: transfer.chunk(s).encode()) for seq in msg.missing])
            return
        if isinstance(msg, WeightRequest) and not peer.subscribed:
            peer.subscribed = True
            if self.bulk is not None:
                ticket = self.bulk.issue(peer_id, lambda ch: self._bulk_opened(peer, ch))
                peer.bulk_due = time.monotonic() + BULK_OPEN_S
                asyncio.get_running_loop().call_later(BULK_OPEN_S, peer.wake.set)
                await peer.ws.send(BulkTicket(self.bulk.port, ticket).encode())
        peer.sent = None  # it answered: what it holds now decides the next push
        peer.wake.set()

    def _bulk_opened(self, peer: _Peer, channel: BulkPeer) -> None:
        """On a bulk thread: the edge's bulk channel is open."""
        loop = self._loop
        if loop is None or self._peers.get(peer.peer_id) is not peer:
            channel.close()
            return
        loop.call_soon_threadsafe(self._use_bulk, peer, channel)

    def _use_bulk(self, peer: _Peer, channel: BulkPeer) -> None:
        if peer.bulk is not None:
            peer.bulk.close()
        peer.bulk = channel
        peer.wake.set()

    # -- pushing -----------------------------------------------------------------------------------
    async def _push_loop(self, peer: _Peer) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await peer.wake.wait()
            peer.wake.clear()
            latest = self.sender.latest
            held = self.sender.peers.get(peer.peer_id, (-1, b""))
            if not peer.subscribed or latest is None or held[0] >= latest.version:
                continue  # it holds the newest (or a lossy copy of it): versions only grow
            now = time.monotonic()
            if peer.sent is not None and now - peer.sent_at < self.answer_timeout:
                continue  # one transfer in flight: its answer wakes this loop
            if peer.bulk is None and now < peer.bulk_due:
                continue  # its bulk channel is opening: that (or the deadline) wakes this loop
            mode, chunk_bytes, interval = self._plan(peer, latest, held)
            if now < peer.sent_at + interval:
                loop.call_later(peer.sent_at + interval - now, peer.wake.set)
                continue
            transfer = await loop.run_in_executor(
                self._pool, self.sender.transfer_for, held[0], held[1], mode, chunk_bytes)
            if transfer is None:
                continue
            peer.sent, peer.sent_at = (transfer.offer.version, transfer.offer.base_version), now
            peer.mode, peer.sent_bytes = transfer.offer.mode, transfer.offer.total_bytes
            self.stats["bytes_sent"] += transfer.offer.total_bytes
            loop.call_later(self.answer_timeout, peer.wake.set)
            await self._send(peer, transfer)

    def _plan(self, peer: _Peer, latest: WeightSet, held: tuple[int, bytes]
              ) -> tuple[str, int, float]:
        if self.bounds is None:
            return self.sender.mode, self.sender.chunk_bytes, 0.0
        has_base = self.sender.base_for(*held) is not None
        plan = plan_sync(peer.meter, latest.nbytes, has_base, self.bounds)
        if peer.plan is None or (plan.mode, plan.chunk_bytes) != (peer.plan.mode,
                                                                 peer.plan.chunk_bytes):
            log.info("weights for %s: %s", peer.peer_id, plan.why)
        peer.plan = plan
        return plan.mode, plan.chunk_bytes, plan.interval_s

    async def _send(self, peer: _Peer, transfer: Transfer) -> None:
        """The transfer over the edge's bulk channel, or (none, or it failed) its websocket."""
        if peer.bulk is not None and not peer.bulk.closed:
            try:
                await asyncio.wrap_future(peer.bulk.send(transfer))
            except CommsError as exc:
                self.stats["bulk_failed"] += 1
                log.warning("weights for %s: bulk channel failed (%s); using the websocket",
                            peer.peer_id, exc)
                peer.bulk = None
            else:
                self.stats["pushed_bulk"] += 1
                return
        frames = [transfer.offer.encode] + [
            (lambda s=seq: transfer.chunk(s).encode()) for seq in range(transfer.n_chunks)]
        if await self._send_frames(peer, frames):
            self.stats["pushed_websocket"] += 1

    async def _send_frames(self, peer: _Peer, makers: Sequence[Any]) -> bool:
        """Encode frames on the worker (a batch per hop) and send them in order; False when the
        connection closed meanwhile."""
        loop = asyncio.get_running_loop()
        for start in range(0, len(makers), ENCODE_BATCH):
            batch = makers[start:start + ENCODE_BATCH]
            frames = await loop.run_in_executor(self._pool, lambda b=batch: [m() for m in b])
            try:
                for frame in frames:
                    await peer.ws.send(frame)
            except ConnectionClosed:
                return False
        return True

    # -- what it reports ---------------------------------------------------------------------------
    def edge_stats(self) -> dict[str, dict[str, Any]]:
        """Per edge that asked for weights (connected now or before): the version it acts
        with, its lag in versions, the sync latency of that version (published -> applied
        there), how it is served and its link's estimates."""
        out = {}
        asked = {p for p, peer in self._peers.items() if peer.subscribed}
        for peer_id in sorted(asked | set(self.sender.peers)):
            peer, held = self._peers.get(peer_id), self.sender.peers.get(peer_id)
            out[peer_id] = {
                "connected": peer is not None, "version": None if held is None else held[0],
                "lag": self.sender.lag(peer_id),
                "sync_latency_s": self.sender.sync_latency_s.get(peer_id)}
            if peer is not None:
                out[peer_id].update({
                    "subscribed": peer.subscribed, "via": "bulk" if peer.bulk else "websocket",
                    "mode": peer.mode, "plan": None if peer.plan is None else peer.plan.why,
                    "rtt_s": peer.meter.rtt_s, "bytes_per_s": peer.meter.bytes_per_s})
        return out
