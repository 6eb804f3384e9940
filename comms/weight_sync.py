"""Versioned weight sets and their transfers: one version laid out as a stream of chunks.

A version travels as a WeightOffer (the layout of every tensor in the stream, with the digest of
each rebuilt tensor and of the whole version) followed by its stream: WeightChunks of
`chunk_bytes` each with a checksum (on the websocket), or the raw bytes on a bulk channel.
Digests and checksums are XXH3 (~30 GB/s here, 20x SHA-256): they guard against corruption and
mixed versions on an authenticated link, not against a forger, whom the handshake keeps out.
Modes: full (raw bytes), fp16 (float tensors as float16: lossy, the copy is marked inexact),
patch (against a base version the receiver holds: unchanged tensors cost nothing, changed ones
travel as indices + new raw bytes of the changed elements when that is smaller, else whole:
bit-exact), adapter (only tensors whose names start with a configured prefix; the others must
equal the base's). Only raw array bytes and msgpack metadata cross the wire: no pickle.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xxhash

from comms.messages import TensorLayout, WeightChunk, WeightOffer
from comms.weight_copies import HostCopier
from comms.weight_sync_budget import ByteBudget
from robot_rl.core import CommsError

CHUNK_BYTES = 1 << 20  # websockets moves 1 MiB messages ~9x faster than one huge one
ALIGN = 64  # every tensor's bytes start at a multiple of this in the stream
HASH_SLICE = 1 << 20  # a digest advances this many bytes at a time (the budget's step)
MODES = ("full", "fp16", "patch", "adapter")
_FLOATS = (np.dtype("<f4"), np.dtype("<f8"))


class WeightSyncError(CommsError):
    """A weight transfer cannot be encoded, or what arrived does not rebuild the version."""


def _bytes(arr: np.ndarray) -> memoryview:
    """A tensor's bytes, flat (0-d and empty tensors included)."""
    return memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))


def chunk_checksum(payload: np.ndarray | memoryview) -> int:
    """The checksum a chunk travels with (XXH3-64 of its bytes)."""
    return int(xxhash.xxh3_64_intdigest(payload))


def tensor_digest(arr: np.ndarray, budget: ByteBudget | None = None, polite: bool = False
                  ) -> bytes:
    """XXH3-128 of a tensor's dtype, shape and bytes. xxhash holds the GIL while it hashes:
    `polite` hands it over after every slice (for a thread beside a control loop, which would
    otherwise wait up to the interpreter's 5 ms switch interval for it)."""
    h = xxhash.xxh3_128(f"{arr.dtype.str}{arr.shape}".encode())
    data = _bytes(arr)
    for start in range(0, len(data), HASH_SLICE):
        part = data[start:start + HASH_SLICE]
        if budget is not None:
            budget.acquire(len(part))
        h.update(part)
        if polite:
            time.sleep(0)  # releases the GIL: a waiting thread takes it now
    return h.digest()


def version_digest(digests: Mapping[str, bytes]) -> bytes:
    """The digest of a whole version's content: its tensors' names and digests."""
    h = xxhash.xxh3_128()
    for name in sorted(digests):
        h.update(name.encode() + b"\0" + digests[name])
    return h.digest()


@dataclass(frozen=True)
class WeightSet:
    """One version of a policy's weights, immutable: read-only arrays and their digests.

    Readers hold a reference to one WeightSet, so they see one version whole or not at all."""

    version: int
    tensors: Mapping[str, np.ndarray]
    digests: Mapping[str, bytes]
    digest: bytes
    exact: bool = True  # False: a lossy (fp16) copy of the sender's version

    @classmethod
    def of(cls, weights: Mapping[str, np.ndarray], version: int) -> WeightSet:
        """A copy of `weights` as version `version` (so the learner may keep training)."""
        tensors = {}
        for name, arr in weights.items():
            copy = np.array(arr, order="C", copy=True)
            copy.setflags(write=False)
            tensors[name] = copy
        return cls.trusted(tensors, version)

    @classmethod
    def trusted(cls, tensors: dict[str, np.ndarray], version: int, exact: bool = True,
                digests: dict[str, bytes] | None = None) -> WeightSet:
        """A set of read-only arrays the caller gives up, digested here unless given."""
        digests = digests if digests is not None else {
            name: tensor_digest(arr) for name, arr in tensors.items()}
        return cls(version, tensors, digests, version_digest(digests), exact)

    @property
    def nbytes(self) -> int:
        return sum(arr.nbytes for arr in self.tensors.values())

    def intact(self) -> bool:
        """Whether every tensor still hashes to its digest (a reader's check for a mixed set)."""
        return version_digest({n: tensor_digest(a) for n, a in self.tensors.items()}) == self.digest


@dataclass
class Transfer:
    """One version encoded against one base: its offer and, on demand, each of its chunks."""

    offer: WeightOffer
    parts: list[tuple[int, memoryview]]  # (offset in the stream, bytes), by offset
    _checksums: dict[int, int] = field(default_factory=dict)
    _starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._starts = [at for at, _ in self.parts]

    @property
    def n_chunks(self) -> int:
        return self.offer.n_chunks

    def chunk(self, seq: int) -> WeightChunk:
        """Chunk `seq`: a view of one tensor's bytes where it lies in one, else assembled."""
        size = self.offer.chunk_bytes
        start, end = seq * size, min((seq + 1) * size, self.offer.total_bytes)
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        first_at, first = self.parts[i]
        if first_at <= start and end <= first_at + len(first):
            payload = np.frombuffer(first[start - first_at:end - first_at], np.uint8)
        else:
            out = np.zeros(end - start, np.uint8)
            for at, data in self.parts[i:]:
                if at >= end:
                    break
                lo, hi = max(at, start), min(at + len(data), end)
                if lo < hi:
                    out[lo - start:hi - start] = np.frombuffer(data[lo - at:hi - at], np.uint8)
            payload = out
        checksum = self._checksums.get(seq)
        if checksum is None:
            checksum = self._checksums[seq] = chunk_checksum(payload)
        return WeightChunk(self.offer.transfer_id, seq, checksum, payload)

    def chunks(self, seqs: Sequence[int] | None = None) -> Iterator[WeightChunk]:
        for seq in range(self.n_chunks) if seqs is None else seqs:
            yield self.chunk(seq)


def _as_bits(arr: np.ndarray) -> np.ndarray:
    """The tensor's elements as unsigned integers of the same width (bit-exact comparison)."""
    return arr.reshape(-1).view(f"<u{arr.dtype.itemsize}") if arr.dtype.itemsize > 1 else \
        arr.reshape(-1).view(np.uint8)


def _sparse(new: np.ndarray, old: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Indices and new values of the elements that differ, or None when sending all is cheaper."""
    new_bits, old_bits = _as_bits(new), _as_bits(old)
    changed = np.flatnonzero(new_bits != old_bits)
    index = changed.astype(np.uint32 if new.size < 2**32 else np.uint64)
    if len(changed) * (index.itemsize + new.itemsize) >= new.nbytes:
        return None
    return index, new_bits[changed]


def _usable_base(new: np.ndarray, name: str, base: WeightSet | None) -> np.ndarray | None:
    old = None if base is None else base.tensors.get(name)
    return old if old is not None and old.dtype == new.dtype and old.shape == new.shape else None


def encode_transfer(new: WeightSet, mode: str, transfer_id: int, base: WeightSet | None = None,
                    adapter_prefixes: Sequence[str] = (), chunk_bytes: int = CHUNK_BYTES
                    ) -> Transfer:
    """`new` encoded in `mode` against `base` (patch/adapter without a base: full). A patch or
    adapter transfer that would carry every tensor whole is sent as full, which needs no base."""
    if mode not in MODES:
        raise WeightSyncError(f"weight sync mode {mode!r} is unknown; use one of {MODES}")
    if mode == "adapter" and not adapter_prefixes:
        raise WeightSyncError("adapter mode needs the name prefixes of the adapter's tensors")
    if mode in ("patch", "adapter") and (base is None or not base.exact):
        mode = "full"
    layouts: list[TensorLayout] = []
    parts: list[tuple[int, memoryview]] = []
    digests = dict(new.digests)
    offset = 0
    for name, arr in new.tensors.items():
        encoding, blobs, count = "raw", [arr], 0
        old = _usable_base(arr, name, base) if mode in ("patch", "adapter") else None
        adapter = mode == "adapter" and name.startswith(tuple(adapter_prefixes))
        if (old is not None and base is not None and not adapter
                and base.digests[name] == new.digests[name]):
            encoding, blobs = "same", []
        elif mode == "fp16" and arr.dtype in _FLOATS:
            half = arr.astype(np.float16)
            encoding, blobs = "fp16", [half]
            digests[name] = tensor_digest(half.astype(arr.dtype))
        elif mode == "patch" and old is not None:
            sparse = _sparse(arr, old)
            if sparse is not None:
                encoding, blobs, count = "sparse", list(sparse), len(sparse[0])
        offset += -offset % ALIGN
        start = offset
        for blob in blobs:
            data = _bytes(blob)
            if len(data):
                parts.append((offset, data))
            offset += len(data)
        layouts.append(TensorLayout(name, arr.dtype.str, tuple(arr.shape), encoding, start,
                                    offset - start, digests[name], count))
    if mode in ("patch", "adapter") and all(t.encoding == "raw" for t in layouts):
        return encode_transfer(new, "full", transfer_id, chunk_bytes=chunk_bytes)
    based = base if mode in ("patch", "adapter") else None
    offer = WeightOffer(
        transfer_id, new.version, version_digest(digests), mode,
        -1 if based is None else based.version, b"" if based is None else based.digest,
        mode != "fp16", chunk_bytes, offset, tuple(layouts))
    return Transfer(offer, parts)


def raw_tensor(t: TensorLayout, stream: np.ndarray) -> np.ndarray:
    """A raw tensor of the offer as a read-only view of the stream (no copy)."""
    size = int(np.prod(t.shape, dtype=np.int64))
    try:
        arr = np.frombuffer(memoryview(stream)[t.offset:t.offset + t.length], t.dtype, size)
    except ValueError as exc:
        raise WeightSyncError(f"tensor {t.name!r} does not fit its bytes: {exc}") from None
    arr = arr.reshape(t.shape)
    arr.setflags(write=False)
    return arr


def rebuild(offer: WeightOffer, stream: np.ndarray, base: WeightSet | None,
            copier: HostCopier | None = None, hashed: Mapping[str, bytes] | None = None
            ) -> WeightSet:
    """The version an offer describes, from its reassembled stream and the base it names;
    WeightSyncError naming the first tensor that does not hash to its digest. `copier` makes
    (and budgets) the copies and digests; `hashed`: digests of raw tensors already taken (while
    later chunks were still arriving)."""
    copier = copier or HostCopier()
    budget = copier.budget
    if offer.base_version >= 0 and (
            base is None or (base.version, base.digest) != (offer.base_version, offer.base_digest)):
        raise WeightSyncError(f"transfer {offer.transfer_id} patches version "
                              f"{offer.base_version}, which this receiver does not hold")
    view = memoryview(stream)
    tensors: dict[str, np.ndarray] = {}
    digests: dict[str, bytes] = {}
    for t in offer.tensors:
        dtype, size = np.dtype(t.dtype), int(np.prod(t.shape, dtype=np.int64))
        payload = view[t.offset:t.offset + t.length]
        if t.encoding == "same":
            if base is None or base.digests.get(t.name) != t.digest:
                raise WeightSyncError(f"tensor {t.name!r} is to stay as in the base, which "
                                      "holds another one")
            tensors[t.name], digests[t.name] = base.tensors[t.name], t.digest
            continue
        try:
            if t.encoding == "raw":
                arr = raw_tensor(t, stream)
            elif t.encoding == "fp16":
                arr = copier.copy(np.frombuffer(payload, np.float16, size), dtype
                                  ).reshape(t.shape)
            else:  # sparse
                old = base.tensors.get(t.name) if base is not None else None
                if old is None or old.shape != t.shape or old.dtype != dtype:
                    raise WeightSyncError(f"tensor {t.name!r} patches a base tensor of "
                                          "another shape or dtype")
                index_type = np.uint32 if size < 2**32 else np.uint64
                index = np.frombuffer(payload, index_type, t.count)
                bits = copier.copy(old)
                flat = _as_bits(bits)
                flat[index] = np.frombuffer(payload, flat.dtype, t.count,
                                            t.count * np.dtype(index_type).itemsize)
                arr = bits
        except (ValueError, IndexError) as exc:
            raise WeightSyncError(f"tensor {t.name!r} does not fit its bytes: {exc}") from None
        arr.setflags(write=False)
        got = (hashed or {}).get(t.name) if t.encoding == "raw" else None
        if (got or tensor_digest(arr, budget, polite=True)) != t.digest:
            raise WeightSyncError(f"tensor {t.name!r} of version {offer.version} does not match "
                                  "its digest")
        tensors[t.name], digests[t.name] = arr, t.digest
    if version_digest(digests) != offer.digest:
        raise WeightSyncError(f"version {offer.version} does not match its digest")
    return WeightSet(offer.version, tensors, digests, offer.digest, offer.exact)
