"""The receiving end of weight sync: reassembles chunks, rebuilds and verifies a version on a
background thread, and swaps it in only when the control loop calls `poll()` between steps.

Transport-agnostic: the link hands it every WeightOffer and WeightChunk with `handle`, or a bulk
channel writes a transfer's bytes straight into the buffer `open_stream` gives and reports them
with `stream_filled`; it answers through `send` (WeightRequest, WeightApplied), which must be safe
to call from any thread. Every entry point may be called from any thread.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from comms.messages import (
    Message,
    TensorLayout,
    WeightApplied,
    WeightChunk,
    WeightOffer,
    WeightRequest,
)
from comms.weight_copies import HostCopier
from comms.weight_sync import (
    WeightSet,
    WeightSyncError,
    chunk_checksum,
    raw_tensor,
    rebuild,
    tensor_digest,
)
from comms.weight_sync_budget import ByteBudget
from robot_rl.core.priority import background_priority


class StreamBuffers:
    """The buffers transfers are received into, reused once nothing refers to one any more (no
    version rebuilt from it is held anywhere), which spares a large version the page faults of
    fresh memory (~0.1-2 s for 400 MB on a busy 2-core VM)."""

    FREE_REFS = 3  # a buffer only this pool refers to: its list, the loop's name, getrefcount's

    def __init__(self, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep at least one buffer, got {keep}")
        self.keep = keep
        self._buffers: list[np.ndarray] = []
        self.reused = 0

    def take(self, nbytes: int) -> np.ndarray:
        """A uint8 buffer of `nbytes` (contents undefined): a free one if it is large enough."""
        for buf in self._buffers:
            if buf.nbytes >= nbytes and sys.getrefcount(buf) <= self.FREE_REFS:
                self.reused += 1
                return buf[:nbytes]
        self._buffers = self._buffers[len(self._buffers) - self.keep + 1:]  # the newest
        fresh = np.empty(nbytes, np.uint8)
        self._buffers.append(fresh)
        return fresh


@dataclass
class _Assembly:
    """The chunks of one transfer arrived so far, and the raw tensors they complete."""

    offer: WeightOffer
    stream: np.ndarray  # uint8, the transfer's bytes (np.empty: no zero-fill, huge pages)
    missing: set[int]
    opened_at: float
    last_heard: float = 0.0  # when a byte of it last arrived
    filled: int = 0  # bytes a bulk channel wrote so far, from the start
    receive_s: float = 0.0  # from the offer to the last byte, once complete
    requested: set[int] = field(default_factory=set)
    by_seq: dict[int, list[TensorLayout]] = field(default_factory=dict)  # raw tensors per chunk
    left: dict[str, int] = field(default_factory=dict)  # chunks each raw tensor still needs
    hashed: dict[str, bytes] = field(default_factory=dict)  # digests taken on the apply thread
    superseded: bool = False

    def __post_init__(self) -> None:
        self.last_heard = self.opened_at
        size = self.offer.chunk_bytes
        for t in self.offer.tensors:
            if t.encoding == "raw" and t.length:
                seqs = range(t.offset // size, (t.offset + t.length - 1) // size + 1)
                self.left[t.name] = len(seqs)
                for seq in seqs:
                    self.by_seq.setdefault(seq, []).append(t)

    def arrived(self, seq: int) -> list[TensorLayout]:
        """Note chunk `seq` in; the raw tensors it completes."""
        self.missing.discard(seq)
        done = []
        for t in self.by_seq.get(seq, ()):
            self.left[t.name] -= 1
            if self.left[t.name] == 0:
                done.append(t)
        return done


class WeightReceiver:
    """Holds the version a robot acts with (`current`) and the next one, verified, until `poll`.

    `current` only ever changes inside `poll`, to a WeightSet rebuilt and hashed whole, so a
    reader sees version N or N+1, never a mix."""

    def __init__(self, send: Callable[[Message], None], budget: ByteBudget | None = None,
                 stall_s: float = 2.0, on_ready: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 max_version_bytes: int = 64 << 30, copy_threads: int = 1) -> None:
        """`budget` bounds the bytes its digests and copies (on `copy_threads`) take per
        interval, so verifying a large version leaves the control loop its share."""
        self._send, self._budget, self._stall_s = send, budget, stall_s
        self._copier = HostCopier(budget, copy_threads)
        self.max_version_bytes = max_version_bytes
        self._on_ready, self._clock = on_ready, clock
        self._lock = threading.Lock()  # current and ready
        self._rx = threading.RLock()  # the assembly, fed from the link's and the bulk thread
        self._current: WeightSet | None = None
        self._ready: WeightSet | None = None
        self._receive_s = (-1, 0.0)  # (version, seconds its bytes took) of the last built
        self._assembly: _Assembly | None = None
        self._buffers = StreamBuffers()
        # the apply thread's work, in order: hash a completed raw tensor, or rebuild a version
        self._builds: queue.Queue[tuple[_Assembly, TensorLayout | None] | None] = queue.Queue()
        self.stats = {"offers": 0, "chunks": 0, "corrupt": 0, "stale": 0, "re_requested": 0,
                      "refused": 0, "applied": 0, "bytes": 0}
        self._worker = threading.Thread(target=self._build_loop, name="weight-apply", daemon=True)
        self._worker.start()

    @property
    def current(self) -> WeightSet | None:
        """The version to act with now; changes only in `poll`."""
        return self._current

    def held(self) -> WeightSet | None:
        """The newest verified version (swapped in or waiting for `poll`): the base of patches."""
        with self._lock:
            return self._ready or self._current

    def _holding(self, version: int, digest: bytes) -> WeightSet | None:
        """The verified version (swapped in or waiting) with that number and content, if any."""
        with self._lock:
            for ws in (self._ready, self._current):
                if ws is not None and (ws.version, ws.digest) == (version, digest):
                    return ws
        return None

    def _request(self, transfer_id: int, missing: list[int], reason: str,
                 whole: bool = False) -> None:
        """Ask for chunks, or (none missing) a transfer against what is held (`whole`: nothing)."""
        held = None if whole else self.held()
        self._send(WeightRequest(transfer_id, -1 if held is None else held.version,
                                 b"" if held is None else held.digest, missing, reason))

    def subscribe(self, reason: str = "connected") -> None:
        """Tell the sender what this receiver holds, so it sends the newest version against it
        (on every (re)connect: a patch when the sender still has that version)."""
        self._request(-1, [], reason)

    def handle(self, msg: Message) -> None:
        """Take one weight message from the link (other messages are refused with TypeError);
        WeightSyncError for an offer larger than `max_version_bytes` (the link should close)."""
        with self._rx:
            if isinstance(msg, WeightOffer):
                self._offer(msg)
            elif isinstance(msg, WeightChunk):
                self._chunk(msg)
            else:
                raise TypeError(f"a weight receiver takes offers and chunks, not {msg.kind}")

    def open_stream(self, offer: WeightOffer) -> memoryview | None:
        """For a bulk channel: the buffer `offer`'s bytes go into, in order (None: the offer is
        stale or refused, and its bytes are to be read and dropped)."""
        with self._rx:
            assembly = self._offer(offer)
            return None if assembly is None else memoryview(assembly.stream)

    def stream_filled(self, transfer_id: int, filled: int) -> None:
        """For a bulk channel: the first `filled` bytes of transfer `transfer_id` are in."""
        with self._rx:
            assembly = self._assembly
            if assembly is None or assembly.offer.transfer_id != transfer_id:
                return
            size, total = assembly.offer.chunk_bytes, assembly.offer.total_bytes
            first = assembly.filled // size
            assembly.filled = filled
            last = assembly.offer.n_chunks if filled >= total else filled // size
            assembly.last_heard = self._clock()
            for seq in range(first, last):
                if seq in assembly.missing:
                    self._arrived(assembly, seq, min(size, total - seq * size))

    def _offer(self, offer: WeightOffer) -> _Assembly | None:
        self.stats["offers"] += 1
        if offer.total_bytes > self.max_version_bytes:
            raise WeightSyncError(
                f"weight offer of {offer.total_bytes} bytes exceeds this receiver's limit of "
                f"{self.max_version_bytes}; raise max_version_bytes if the model is that large")
        held = self.held()
        if offer.base_version >= 0 and self._holding(offer.base_version, offer.base_digest) is None:
            self.stats["refused"] += 1
            have = "nothing" if held is None else f"version {held.version}"
            self._request(-1, [], f"transfer {offer.transfer_id} patches version "
                          f"{offer.base_version}; this receiver holds {have}")
            return None
        if held is not None and offer.version <= held.version:
            self.stats["stale"] += 1
            return None
        assembly = _Assembly(offer, self._buffers.take(offer.total_bytes),
                             set(range(offer.n_chunks)), self._clock())
        if self._assembly is not None:
            self._assembly.superseded = True
        self._assembly = assembly
        if not assembly.missing:
            self._complete(assembly)
        return assembly

    def _chunk(self, chunk: WeightChunk) -> None:
        assembly = self._assembly
        if assembly is None or chunk.transfer_id != assembly.offer.transfer_id:
            self.stats["stale"] += 1
            return
        offer, seq = assembly.offer, chunk.seq
        assembly.last_heard = self._clock()
        if seq not in assembly.missing:
            self.stats["stale"] += 1
            return
        start = seq * offer.chunk_bytes
        size = min(offer.chunk_bytes, offer.total_bytes - start)
        if len(chunk.payload) != size or chunk_checksum(chunk.payload) != chunk.checksum:
            self.stats["corrupt"] += 1
            self._re_request(assembly, [seq], f"chunk {seq} of transfer {offer.transfer_id} "
                             "is corrupt")
            return
        assembly.stream[start:start + size] = chunk.payload
        self._arrived(assembly, seq, size)
        if assembly.missing and seq == offer.n_chunks - 1:  # the last came: the rest was lost
            self._re_request(assembly, sorted(assembly.missing - assembly.requested),
                             "chunks lost")

    def _arrived(self, assembly: _Assembly, seq: int, size: int) -> None:
        for tensor in assembly.arrived(seq):  # hashed while the next chunks arrive
            self._builds.put((assembly, tensor))
        self.stats["chunks"] += 1
        self.stats["bytes"] += size
        if not assembly.missing:
            self._complete(assembly)

    def _re_request(self, assembly: _Assembly, seqs: list[int], reason: str) -> None:
        if not seqs:
            return
        assembly.requested.update(seqs)
        self.stats["re_requested"] += len(seqs)
        self._request(assembly.offer.transfer_id, seqs, reason)

    def tick(self) -> None:
        """Re-request every missing chunk of a transfer silent for `stall_s` (its tail was lost)."""
        with self._rx:
            assembly = self._assembly
            if assembly is not None and assembly.missing and (
                    self._clock() - assembly.last_heard >= self._stall_s):
                assembly.last_heard = self._clock()
                assembly.requested.clear()
                self._re_request(assembly, sorted(assembly.missing), "transfer stalled")

    def _complete(self, assembly: _Assembly) -> None:
        assembly.receive_s = self._clock() - assembly.opened_at
        self._assembly = None
        self._builds.put((assembly, None))

    def _build_loop(self) -> None:
        background_priority()
        while (job := self._builds.get()) is not None:
            assembly, tensor = job
            if assembly.superseded:
                continue
            if tensor is not None:
                try:
                    arr = raw_tensor(tensor, assembly.stream)
                except WeightSyncError:
                    continue  # the rebuild names it
                assembly.hashed[tensor.name] = tensor_digest(arr, self._budget, polite=True)
                continue
            try:
                offer = assembly.offer
                base = self._holding(offer.base_version, offer.base_digest)
                built = rebuild(offer, assembly.stream, base, self._copier, assembly.hashed)
            except WeightSyncError as exc:
                self.stats["refused"] += 1
                self._request(-1, [], f"{exc}; send the full weights", whole=True)
                continue
            with self._lock:
                self._ready = built
                self._receive_s = (built.version, assembly.receive_s)
            if self._on_ready is not None:
                self._on_ready()

    def poll(self) -> WeightSet | None:
        """Swap in the newest verified version, if one is waiting; call it between control
        steps. Returns the version now current when it changed, else None."""
        with self._lock:
            ready, self._ready = self._ready, None
            if ready is None:
                return None
            self._current = ready
            version, seconds = self._receive_s
        self.stats["applied"] += 1
        self._send(WeightApplied(ready.version, ready.digest,
                                 seconds if version == ready.version else 0.0))
        return ready

    def close(self) -> None:
        """Stop the build thread (a transfer being rebuilt is dropped)."""
        self._builds.put(None)
        self._worker.join(10.0)
        self._copier.close()
