"""A bounded RAM pool of whole `steps` chunks: the newest always, older ones rotated in.

Chunks occupy fixed slots of preallocated arrays, so a batch is one fancy-index per column, as in
a RAM ring buffer. A background thread loads one older chunk from disk per rotation signal into
the slot of the chunk resident longest, so over time every committed chunk gets its turn. A chunk
loaded from disk brings along the next observations of its rows whose successor row lies in
another chunk (its "boundary": one row per robot that streamed into it), so a resident chunk
never needs another chunk to be sampled.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from buffer.step_index import Growable
from buffer.zarr_storage import ZarrStorage
from robot_rl.core import ConfigError, CorruptDataError

log = logging.getLogger(__name__)
RESERVED = -2


def available_memory() -> int:
    """Bytes of memory available now (Linux MemAvailable, else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class CacheConfig:
    """Cache size (bytes or transitions; default a quarter of available memory) and rotation."""

    max_bytes: int | None = None
    max_transitions: int | None = None
    recent_share: float = 0.5  # share of slots reserved for the newest chunks
    rotate_every: int = 1  # batches sampled per chunk rotated in from disk
    background: bool = True

    def budget(self, row_bytes: int) -> int:
        if self.max_bytes is not None and self.max_transitions is not None:
            raise ConfigError("cache: set max_bytes or max_transitions, not both")
        if self.max_transitions is not None:
            return self.max_transitions * row_bytes
        if self.max_bytes is not None:
            return self.max_bytes
        return available_memory() // 4


class ChunkCache:
    """Slots of `steps` chunks in RAM; `lock` guards the mapping while a batch is gathered."""

    def __init__(self, storage: ZarrStorage, config: CacheConfig,
                 on_corrupt: Callable[[int], None],
                 successors: Callable[[np.ndarray], np.ndarray], columns: list[str]) -> None:
        self.storage, self.config, self.on_corrupt = storage, config, on_corrupt
        self.successors = successors  # step rows -> the row whose obs is their next (-1: none)
        table = storage.tables["steps"]
        self.rows_per_chunk = table.chunk
        self.specs = {k: table.specs[k] for k in columns}  # the `steps` columns it holds
        row_bytes = sum(s.nbytes for s in self.specs.values())
        self.n_slots = max(2, config.budget(row_bytes) // (row_bytes * self.rows_per_chunk))
        size = self.n_slots * self.rows_per_chunk
        self.pool = {k: np.zeros((size, *s.shape), s.dtype) for k, s in self.specs.items()}
        self.slot_of = Growable("int32", fill=-1)  # chunk -> slot, -1 when not resident
        self.chunk_in_slot = np.full(self.n_slots, -1, np.int64)
        self.loaded_at = np.zeros(self.n_slots, np.int64)
        # slot -> (sorted rows of its chunk whose next obs is in another chunk, those obs by key)
        self.boundary: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self.recent = max(1, int(self.n_slots * config.recent_share))
        self.lock = threading.Lock()
        self._loading = threading.Lock()
        self.version = 0
        self.loads = 0
        self._tick = 0
        self._batches = 0
        self._order: list[int] = []
        self._choosing = threading.Lock()  # the loader and a sampler both take from `_order`
        self._rng = np.random.default_rng()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    def capacity_rows(self) -> int:
        return self.n_slots * self.rows_per_chunk

    def start(self) -> None:
        """Load the newest chunk now; the background loader fills the other slots."""
        n_chunks = self.n_chunks()
        self.slot_of.extend(np.full(n_chunks - self.slot_of.n, -1, np.int32))
        if n_chunks:
            self.load(n_chunks - 1)
        if self.config.background:
            self._thread = threading.Thread(target=self._run, name="buffer-loader", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def n_chunks(self) -> int:
        return -(-self.storage.steps // self.rows_per_chunk)

    # -- slots -----------------------------------------------------------------------------------
    def _take_slot(self, newest_chunk: int) -> int | None:
        """Under the lock: a free slot, else that of the longest-resident evictable chunk."""
        free = np.flatnonzero(self.chunk_in_slot == -1)
        if len(free):
            slot = int(free[0])
        else:
            chunks = self.chunk_in_slot
            evictable = (chunks >= 0) & (chunks <= newest_chunk - self.recent)
            if not evictable.any():
                evictable = (chunks >= 0) & (chunks < newest_chunk)
            if not evictable.any():
                return None
            candidates = np.flatnonzero(evictable)
            slot = int(candidates[np.argmin(self.loaded_at[candidates])])
            self.slot_of.data[chunks[slot]] = -1
        self.chunk_in_slot[slot] = RESERVED
        self.version += 1
        return slot

    def _map(self, slot: int, chunk: int,
             boundary: tuple[np.ndarray, dict[str, np.ndarray]] | None = None) -> None:
        self.chunk_in_slot[slot] = chunk
        if boundary is None:
            self.boundary.pop(slot, None)
        else:
            self.boundary[slot] = boundary
        self.slot_of.data[chunk] = slot
        self._tick += 1
        self.loaded_at[slot] = self._tick
        self.version += 1

    def add_rows(self, start: int, columns: dict[str, np.ndarray]) -> None:
        """Put newly committed rows in RAM (the columns it holds of `columns`): the newest data
        is always resident."""
        rpc, end = self.rows_per_chunk, start + len(columns["action"])
        lo = start
        while lo < end:
            chunk = lo // rpc
            hi = min((chunk + 1) * rpc, end)
            with self.lock:
                if self.slot_of.n <= chunk:
                    self.slot_of.extend(np.full(chunk + 1 - self.slot_of.n, -1, np.int32))
                slot = int(self.slot_of.data[chunk])
                if slot < 0 and lo % rpc == 0:  # a fresh chunk: it starts with these rows
                    taken = self._take_slot(chunk)
                    assert taken is not None  # an older chunk is always evictable for the newest
                    slot = taken
                    self._map(slot, chunk)
                if slot >= 0:
                    base = slot * rpc - chunk * rpc
                    for k, pool in self.pool.items():
                        pool[base + lo: base + hi] = columns[k][lo - start: hi - start]
                    self.version += 1
            if slot < 0:  # evicted meanwhile: its earlier rows are committed, load it whole
                self.load(chunk)
            lo = hi

    def load(self, chunk: int) -> bool:
        """Read one chunk from disk into a slot; False if it is damaged (then quarantined)."""
        with self._loading:  # one load at a time: loads never compete for slots
            with self.lock:
                if self.slot_of.data[chunk] >= 0:
                    return True
            try:
                data = self.storage.read_chunk(chunk, list(self.specs))
            except CorruptDataError as exc:
                self.storage.quarantine("steps", chunk, str(exc))
                self.on_corrupt(chunk)
                return False
            boundary = self._read_boundary(chunk, len(data["action"]))
            with self.lock:
                slot = self._take_slot(self.n_chunks() - 1)
            if slot is None:
                return False
            base = slot * self.rows_per_chunk
            n = len(data["action"])
            for k, pool in self.pool.items():
                pool[base: base + n] = data[k]
            with self.lock:
                self._map(slot, chunk, boundary)
                self.loads += 1
            return True

    def _read_boundary(self, chunk: int, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The rows of `chunk` whose successor row is in another chunk, and its observations
        (read from that chunk; a damaged one leaves those rows without a next observation)."""
        rows = chunk * self.rows_per_chunk + np.arange(n)
        nxt = self.successors(rows)
        far = (nxt >= 0) & (nxt // self.rows_per_chunk != chunk)
        keys = [k for k in self.specs if k.startswith("obs/")]
        try:
            found = self.storage.read_rows(nxt[far], keys) if far.any() else None
        except CorruptDataError:
            found = None
        if found is None:
            return np.zeros(0, np.int64), {k: self.pool[k][:0].copy() for k in keys}
        return rows[far], {k: found[k] for k in keys}

    # -- rotation --------------------------------------------------------------------------------
    def on_batch(self) -> None:
        """Called per sampled batch; every `rotate_every` batches, wake the loader."""
        self._batches += 1
        if self._batches % self.config.rotate_every == 0:
            if self._thread is None:
                self.rotate_once()
            else:
                self._wake.set()

    def rotate_once(self) -> bool:
        """Load the next non-resident chunk of the rotation order (a damaged one is quarantined
        instead: its turn is taken all the same); False if all are resident."""
        chunk = self._next_in_order()
        if chunk is None:
            return False
        self.load(chunk)
        return True

    def _next_in_order(self) -> int | None:
        # a reader's refresh swaps in the newer storage before its rows (and their chunks' slots)
        # arrive: chunks the cache has no slot entry for yet wait for them
        sealed = min(self.storage.tables["steps"].sealed // self.rows_per_chunk, self.slot_of.n)
        quarantined = {c for t, c in self.storage.quarantined if t == "steps"}
        with self._choosing:
            for _ in range(2):
                while self._order:
                    chunk = self._order.pop()
                    if (chunk < sealed and self.slot_of.data[chunk] < 0
                            and chunk not in quarantined):
                        return chunk
                self._order = self._rng.permutation(sealed).tolist()
        return None

    def fill(self) -> None:
        """Load chunks now until the cache is full or everything committed is resident."""
        while (self.chunk_in_slot == -1).any() and self.rotate_once():
            pass

    def _run(self) -> None:
        while not self._stop:
            has_free = bool((self.chunk_in_slot == -1).any())
            if not (has_free and self.rotate_once()):
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                if not self._stop:
                    self.rotate_once()

    # -- reading (hold `lock`) -------------------------------------------------------------------
    def resident_chunks(self) -> np.ndarray:
        chunks = self.chunk_in_slot
        return np.sort(chunks[chunks >= 0])

    def is_resident(self, rows: np.ndarray) -> np.ndarray:
        chunk = rows // self.rows_per_chunk
        ok = (rows >= 0) & (chunk < self.slot_of.n)
        out = np.zeros(len(rows), bool)
        out[ok] = self.slot_of.data[chunk[ok]] >= 0
        return out

    def has_boundary(self, rows: np.ndarray) -> np.ndarray:
        """Rows of resident chunks whose next observation came with their chunk."""
        out = np.zeros(len(rows), bool)
        if not self.boundary:
            return out
        slots = np.where(self.is_resident(rows), self.slot_of.data[
            np.minimum(np.maximum(rows, 0) // self.rows_per_chunk, self.slot_of.n - 1)], -1)
        for slot in np.unique(slots[slots >= 0]):
            known = self.boundary.get(int(slot))
            if known is not None:
                at = slots == slot
                out[at] = np.isin(rows[at], known[0])
        return out

    def boundary_obs(self, keys: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        """The observation after each of `rows` (which all `has_boundary`), for each of `keys`
        ("obs/<k>")."""
        out = {k: np.empty((len(rows), *self.specs[k].shape), self.specs[k].dtype) for k in keys}
        slots = self.slot_of.data[rows // self.rows_per_chunk]
        for slot in np.unique(slots):
            known_rows, obs = self.boundary[int(slot)]
            at = slots == slot
            found = np.searchsorted(known_rows, rows[at])
            for k in keys:
                out[k][at] = obs[k][found]
        return out

    def positions(self, rows: np.ndarray) -> np.ndarray:
        rpc = self.rows_per_chunk
        return self.slot_of.data[rows // rpc].astype(np.int64) * rpc + rows % rpc
