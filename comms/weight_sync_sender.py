"""The sending end of weight sync: publishes versions and serves each peer the newest one,
encoded against what that peer holds, each encoding made once however many peers take it.

Transport-agnostic: the link asks `push(peer)` for the messages that bring a peer up to date,
hands every WeightRequest and WeightApplied from a peer to `handle(peer, msg)`, and sends the
messages either returns, in order.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from comms.messages import Message, WeightApplied, WeightRequest
from comms.weight_sync import CHUNK_BYTES, MODES, Transfer, WeightSet, encode_transfer


class WeightSender:
    """Keeps the last `history` versions (the bases patches are made against) and, per peer, the
    version it last said it holds, how long that version took from `publish` to being applied
    there (`sync_latency_s`) and how many versions it lags behind (`lag`)."""

    def __init__(self, mode: str = "full", chunk_bytes: int = CHUNK_BYTES,
                 adapter_prefixes: Sequence[str] = (), history: int = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in MODES:
            raise ValueError(f"weight sync mode {mode!r} is unknown; use one of {MODES}")
        if history < 1:
            raise ValueError(f"history must keep at least the newest version, got {history}")
        self.mode, self.chunk_bytes = mode, chunk_bytes
        self.adapter_prefixes = tuple(adapter_prefixes)
        self._history: OrderedDict[int, WeightSet] = OrderedDict()
        self._keep = history
        # (version, base, mode, chunk bytes) -> its encoding
        self._transfers: dict[tuple[int, int, str, int], Transfer] = {}
        self._by_id: dict[int, Transfer] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self.peers: dict[str, tuple[int, bytes]] = {}  # peer -> (version, digest) it holds
        self.sync_latency_s: dict[str, float] = {}  # peer -> publish-to-applied of its version
        self._clock = clock
        self._published_at: dict[int, float] = {}
        self.stats = {"encoded": 0, "chunks_sent": 0, "bytes_sent": 0}

    @property
    def latest(self) -> WeightSet | None:
        return next(reversed(self._history.values()), None)

    def publish(self, weights: Mapping[str, np.ndarray] | WeightSet, version: int,
                published_at: float | None = None) -> WeightSet:
        """Make `weights` the newest version (a WeightSet is kept as is, others are copied);
        `published_at` (this sender's clock; default now) starts its sync latency."""
        latest = self.latest
        if latest is not None and version <= latest.version:
            raise ValueError(f"version {version} is not newer than version {latest.version}")
        ws = weights if isinstance(weights, WeightSet) else WeightSet.of(weights, version)
        with self._lock:
            self._history[version] = ws
            self._published_at[version] = self._clock() if published_at is None else published_at
            while len(self._history) > self._keep:
                old, _ = self._history.popitem(last=False)
                self._published_at.pop(old, None)
            self._transfers.clear()  # encodings of older versions are never sent again
            self._by_id.clear()
        return ws

    def lag(self, peer: str) -> int | None:
        """How many versions `peer` is behind the newest (None: it never said what it holds)."""
        latest, held = self.latest, self.peers.get(peer)
        if latest is None or held is None:
            return None
        return latest.version - held[0] if held[0] >= 0 else latest.version

    def base_for(self, have_version: int, have_digest: bytes) -> WeightSet | None:
        """The version a peer holding (`have_version`, `have_digest`) can be patched against."""
        base = self._history.get(have_version)
        return base if base is not None and base.digest == have_digest else None

    def transfer_for(self, have_version: int, have_digest: bytes, mode: str | None = None,
                     chunk_bytes: int | None = None) -> Transfer | None:
        """The newest version encoded (in `mode`, default this sender's) against what a peer
        holds (a patch when this sender still has that version, else whole); None when the peer
        holds the newest already (or a lossy copy of it). Each encoding is made once, whoever
        asks for it."""
        latest = self.latest
        if latest is None or have_version >= latest.version:  # versions only grow
            return None
        mode, chunk_bytes = mode or self.mode, chunk_bytes or self.chunk_bytes
        base = self.base_for(have_version, have_digest)  # else: another content (a lossy copy)
        key = (latest.version, base.version if base is not None else -1, mode, chunk_bytes)
        with self._lock:
            transfer = self._transfers.get(key)
            if transfer is None:
                transfer = encode_transfer(latest, mode, self._next_id, base,
                                           self.adapter_prefixes, chunk_bytes)
                self._next_id += 1
                self._transfers[key] = self._by_id[transfer.offer.transfer_id] = transfer
                self.stats["encoded"] += 1
        return transfer

    def _send(self, transfer: Transfer, seqs: Sequence[int] | None) -> Iterator[Message]:
        for chunk in transfer.chunks(seqs):
            self.stats["chunks_sent"] += 1
            self.stats["bytes_sent"] += len(chunk.payload)
            yield chunk

    def push(self, peer: str) -> Iterator[Message]:
        """The offer and chunks that bring `peer` to the newest version (none if it has it)."""
        version, digest = self.peers.get(peer, (-1, b""))
        transfer = self.transfer_for(version, digest)
        if transfer is not None:
            yield transfer.offer
            yield from self._send(transfer, None)

    def note(self, peer: str, msg: WeightRequest | WeightApplied) -> None:
        """Record what `peer` says it holds (and, for WeightApplied, its sync latency)."""
        if isinstance(msg, WeightApplied):
            self.peers[peer] = (msg.version, msg.digest)
            published = self._published_at.get(msg.version)
            if published is not None:
                self.sync_latency_s[peer] = self._clock() - published
        else:
            self.peers[peer] = (msg.have_version, msg.have_digest)

    def resendable(self, msg: WeightRequest) -> Transfer | None:
        """The transfer whose missing chunks `msg` asks for, if it is still served."""
        transfer = self._by_id.get(msg.transfer_id) if msg.missing else None
        if transfer is not None and all(0 <= s < transfer.n_chunks for s in msg.missing):
            return transfer
        return None

    def handle(self, peer: str, msg: Message) -> Iterator[Message]:
        """Answer a peer's WeightRequest (resend chunks, or a transfer against what it holds) or
        note its WeightApplied."""
        if not isinstance(msg, WeightApplied | WeightRequest):
            raise TypeError(f"a weight sender takes requests and applied notes, not {msg.kind}")
        self.note(peer, msg)
        if isinstance(msg, WeightApplied):
            return
        transfer = self.resendable(msg)
        if transfer is not None:
            yield from self._send(transfer, msg.missing)
            return
        yield from self.push(peer)
