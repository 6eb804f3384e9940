"""One append-only table on disk: whole chunks in Zarr, the not-yet-full chunk in WAL segments.

A chunk file is written once, when its chunk is full, and never rewritten; rows of the last,
partly filled chunk go to small write-ahead segment files, one per commit (only the new rows), so
committing costs O(new data). Every sealed chunk has a CRC-32 of its raw values in the checksum
log; every segment has a CRC-32 of its file in the commit record.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.codec import Codec
from zarr.codecs import BloscCodec, ZstdCodec

from buffer.checksums import ChecksumLog, crc32
from buffer.chunk_files import Decoder, chunk_decoder, chunk_encoder, chunk_path
from buffer.row_buffer import RowBuffer
from buffer.rows_file import decode_rows, encode_rows, rows_dtype
from robot_rl.core import ArraySpec, CorruptDataError, StorageError

log = logging.getLogger(__name__)
MAX_SEGMENTS = 8  # more small live segments than this are merged into one
BIG_SEGMENT_PARTS = 8  # a segment of chunk/8 rows or more is never merged again: one damaged
# file costs at most its own rows, never the whole unsealed chunk


def column_codec(spec: ArraySpec) -> Codec:
    """How a column's chunks are compressed. Images (uint8, >= 64 bytes a row): plain Zstd level
    1 over the whole chunk, so frames compress against each other (sim cameras: 4-13x vs 2.5-4x
    for Blosc's independent blocks, at less CPU); other wide columns: Blosc Zstd 1 with byte
    shuffle; small ones: Blosc Zstd 3 with bit shuffle."""
    if spec.dtype == "uint8" and spec.nbytes >= 64:
        return ZstdCodec(level=1)
    wide = spec.nbytes >= 64
    return BloscCodec(cname="zstd", clevel=1 if wide else 3,
                      shuffle="shuffle" if wide else "bitshuffle")


@dataclass(frozen=True)
class Segment:
    """A WAL file holding rows [start, stop) of a table, with the CRC-32 of the file."""

    file: str
    start: int
    stop: int
    crc: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "start": self.start, "stop": self.stop, "crc": self.crc}


@dataclass(frozen=True)
class Damage:
    """Rows [start, stop) of a table that were lost to a damaged file, and why."""

    table: str
    start: int
    stop: int
    reason: str


@dataclass(frozen=True)
class TableState:
    """What a table's commit entry says: row counts and live segments."""

    rows: int
    sealed: int
    segments: list[Segment]

    def entry(self) -> dict[str, Any]:
        return {"rows": self.rows, "sealed": self.sealed,
                "segments": [s.to_json() for s in self.segments]}


@dataclass(frozen=True)
class TableWrite:
    """What writing a table's staged rows produced: its commit entry, the files the commit
    makes obsolete, the state to `apply` once committed, and the files to fsync before."""

    entry: dict[str, Any]
    obsolete: list[Path]
    state: TableState
    unsynced: list[Path]
    new: dict[str, np.ndarray]  # the staged rows (views, valid until the next stage)


def _concat(parts: list[dict[str, np.ndarray]],
            specs: dict[str, ArraySpec]) -> dict[str, np.ndarray]:
    if not parts:
        return {k: np.zeros((0, *s.shape), s.dtype) for k, s in specs.items()}
    return {k: np.concatenate([p[k] for p in parts]) for k in specs}


class ChunkedTable:
    """Equal-length columns of one table; `stage` rows, `write` them at commit, `read_*` back."""

    def __init__(self, root: Path, group: zarr.Group, name: str, specs: dict[str, ArraySpec],
                 rows_per_chunk: int, checksums: ChecksumLog, fsync: bool,
                 fill: dict[str, int] | None = None) -> None:
        self.root, self.group, self.name = root, group, name
        self.specs, self.chunk, self.checksums, self.fsync = specs, rows_per_chunk, checksums, fsync
        self.fill = fill or {}  # column values that mark a lost row (e.g. episode_id -1)
        self.damaged: list[Damage] = []  # WAL rows lost when the table was opened
        self.rows = 0
        self.sealed = 0
        self.segments: list[Segment] = []
        self.pending = RowBuffer(specs)  # rows [sealed, rows), committed, then staged ones
        self.row_dtype = rows_dtype(specs)
        self._arrays: dict[str, zarr.Array] = {}
        self._decoders: dict[str, Decoder | None] = {}

    def create(self) -> None:
        for col, spec in self.specs.items():
            # chunk files side by side (c.7.0.0.0): no directories to create per chunk
            self.group.create_array(f"{self.name}/{col}", shape=(0, *spec.shape),
                                    chunks=(self.chunk, *spec.shape), dtype=spec.dtype,
                                    compressors=column_codec(spec),
                                    chunk_key_encoding={"name": "default", "separator": "."})

    def array(self, col: str) -> zarr.Array:
        """The Zarr array of column `col` (opened once; a damaged zarr.json is a StorageError)."""
        arr = self._arrays.get(col)
        if arr is None:
            try:
                arr = self.group[f"{self.name}/{col}"]
            except Exception as exc:  # zarr raises JSON, Unicode and its own errors alike
                raise StorageError(f"{self.root}/{self.name}/{col}/zarr.json: the array's "
                                   f"metadata is damaged ({type(exc).__name__}); restore the "
                                   "file from a backup") from None
            # every chunk gets a file, so a deleted file is damage, not "all zeros"
            arr = self._arrays[col] = arr.with_config({"write_empty_chunks": True})
        return arr

    # -- commit ----------------------------------------------------------------------------------
    def stage(self, columns: Mapping[str, np.ndarray | Sequence[np.ndarray]]) -> None:
        """Add rows (per column an array of rows, or one array per row); written at commit."""
        self.pending.append(columns)

    @property
    def staged_rows(self) -> int:
        return len(self.pending) - (self.rows - self.sealed)

    @property
    def unsealed(self) -> dict[str, np.ndarray]:
        """The committed rows of the last, not yet full chunk (views)."""
        return self.pending.view(0, self.rows - self.sealed)

    def write(self, commit_no: int) -> TableWrite:
        """Write staged rows to disk without making them visible (nor fsyncing them): the
        commit entry, obsolete segment files, the state to `apply` and the files to fsync."""
        pending = self.pending.view()
        n_new = self.staged_rows
        new = self.pending.view(self.rows - self.sealed)
        rows = self.rows + n_new
        full = rows // self.chunk * self.chunk
        segments, sealed, obsolete, unsynced = list(self.segments), self.sealed, [], []
        if full > self.sealed:
            unsynced += self._seal(pending, full)
            pending = {k: v[full - self.sealed:] for k, v in pending.items()}
            obsolete = [self.root / s.file for s in self.segments]
            segments, sealed = [], full
            if rows > full:
                segments = [self._write_segment(commit_no, pending, full, rows, unsynced)]
        elif n_new and len(self.segments) - len(self._big_prefix()) >= MAX_SEGMENTS:
            keep = self._big_prefix()  # merge only the small newest segments, with the new rows
            start = keep[-1].stop if keep else self.sealed
            obsolete = [self.root / s.file for s in self.segments[len(keep):]]
            merged = {k: v[start - self.sealed:] for k, v in pending.items()}
            segments = [*keep, self._write_segment(commit_no, merged, start, rows, unsynced)]
        elif n_new:
            segments.append(self._write_segment(commit_no, new, self.rows, rows, unsynced))
        state = TableState(rows, sealed, segments)
        return TableWrite(state.entry(), obsolete, state, unsynced, new)

    def _big_prefix(self) -> list[Segment]:
        """The leading segments big enough to be left alone by merges."""
        big = max(1, self.chunk // BIG_SEGMENT_PARTS)
        prefix = []
        for seg in self.segments:
            if seg.stop - seg.start < big:
                break
            prefix.append(seg)
        return prefix

    def apply(self, state: TableState) -> None:
        """After the commit record is replaced: the written rows are now the committed ones."""
        self.pending.drop_front(state.sealed - self.sealed)
        self.segments, self.rows, self.sealed = state.segments, state.rows, state.sealed

    def _seal(self, pending: dict[str, np.ndarray], full: int) -> list[Path]:
        """Write the chunks that became full; the chunk files written."""
        written = []
        for col, values in pending.items():
            arr = self.array(col)
            if arr.shape[0] < full:  # grown by doubling: zarr.json is rewritten O(log n) times
                arr.resize((max(full, 2 * arr.shape[0]), *arr.shape[1:]))
            encode = chunk_encoder(arr)
            if encode is None:  # a layout chunk_files does not write: zarr does
                arr[self.sealed:full] = values[: full - self.sealed]
            for c in range(self.sealed // self.chunk, full // self.chunk):
                lo = c * self.chunk - self.sealed
                block = values[lo: lo + self.chunk]
                self.checksums.add(f"{self.name}/{col}", c, crc32(block))
                path = chunk_path(self.root / self.name / col, arr, c)
                if encode is not None:
                    if not path.parent.is_dir():  # (arrays of older buffers nest chunk files)
                        path.parent.mkdir(parents=True)
                    path.write_bytes(encode(block))
                written.append(path)
        return written if self.fsync else []

    def _write_segment(self, commit_no: int, cols: dict[str, np.ndarray], start: int,
                       stop: int, unsynced: list[Path]) -> Segment:
        """Write rows [start, stop) to a new WAL file (added to `unsynced`); it has a name of
        its own, so it needs no temp file: until a record lists it, it is debris."""
        data = encode_rows(cols, self.row_dtype)
        name = f"{self.name}-{commit_no:010d}.npy"
        (self.root / "wal" / name).write_bytes(data)
        if self.fsync:
            unsynced.append(self.root / "wal" / name)
        return Segment(f"wal/{name}", start, stop, zlib.crc32(data))

    # -- open ------------------------------------------------------------------------------------
    def restore(self, entry: dict[str, Any], writable: bool,
                earlier: ChunkedTable | None = None) -> None:
        """Load the committed state; a writer cuts arrays back to the committed sealed rows.
        `earlier`: this table as a reader read it at an earlier commit. What a commit wrote never
        changes (sealed chunks, WAL segments by name and CRC), so its opened arrays that reach
        the sealed rows and its rows of segments still listed are taken over, not read again."""
        self.rows, self.sealed = int(entry["rows"]), int(entry["sealed"])
        self.segments = [Segment(**s) for s in entry["segments"]]
        # (a reader retrying after racing the writer reads shapes anew)
        self._arrays = {} if earlier is None else {
            col: arr for col, arr in earlier._arrays.items() if arr.shape[0] >= self.sealed}
        for col, spec in self.specs.items():
            arr = self.array(col)
            if arr.shape[0] < self.sealed:
                raise CorruptDataError(f"{self.root}/{self.name}/{col}: holds {arr.shape[0]} "
                                       f"rows, the commit record says {self.sealed} are sealed")
            if writable and arr.shape[0] > self.sealed:  # rows of an unfinished commit
                arr.resize((self.sealed, *spec.shape))
        self.pending = RowBuffer(self.specs, max(16, self.rows - self.sealed))
        self.pending.append(self.read_unsealed(earlier))

    def reseal_unverified(self) -> dict[int, str]:
        """After the checksum log lost lines: checksum again each sealed chunk that has none and
        still decodes; return the chunks that do not (chunk -> reason)."""
        failed = {}
        for c in range(self.sealed // self.chunk):
            for col in self.specs:
                key = f"{self.name}/{col}"
                if (key, c) in self.checksums.crcs:
                    continue
                try:
                    values = self.array(col)[c * self.chunk: (c + 1) * self.chunk]
                except Exception as exc:
                    failed[c] = f"{self.root}/{key} chunk {c}: unreadable ({exc})"
                    continue
                self.checksums.add(key, c, crc32(values))
        return failed

    def filler(self, n: int) -> dict[str, np.ndarray]:
        """`n` rows standing in for lost ones: zeros, and the `fill` marks of lost rows."""
        return {k: np.full((n, *s.shape), self.fill.get(k, 0), s.dtype)
                for k, s in self.specs.items()}

    def read_unsealed(self, earlier: ChunkedTable | None = None) -> dict[str, np.ndarray]:
        """The committed rows of the WAL segments (those `earlier` read intact: from it); a
        damaged segment costs only its own rows, which come back as `filler` and are listed in
        `damaged`."""
        parts, self.damaged = [], []
        known = set() if earlier is None else {
            s for s in earlier.segments
            if not any(d.start < s.stop and s.start < d.stop for d in earlier.damaged)}
        for seg in self.segments:
            if seg in known:
                assert earlier is not None
                lo, hi = seg.start - earlier.sealed, seg.stop - earlier.sealed
                parts.append(earlier.pending.view(lo, hi))
                continue
            try:
                part = self._read_segment(seg)
                if any(len(v) != seg.stop - seg.start for v in part.values()):
                    raise CorruptDataError(f"{self.root / seg.file}: holds the wrong number of "
                                           f"rows for {seg.start}-{seg.stop - 1}")
            except CorruptDataError as exc:
                self.damaged.append(Damage(self.name, seg.start, seg.stop, str(exc)))
                part = self.filler(seg.stop - seg.start)
            parts.append(part)
        cols = _concat(parts, self.specs)
        if len(next(iter(cols.values()))) != self.rows - self.sealed:
            raise CorruptDataError(f"{self.root}: WAL segments of {self.name} hold the wrong "
                                   "number of rows; the buffer folder was edited by hand")
        return cols

    def _read_segment(self, seg: Segment) -> dict[str, np.ndarray]:
        path = self.root / seg.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorruptDataError(f"{path}: committed WAL segment is missing ({exc})") from exc
        if zlib.crc32(data) != seg.crc:
            raise CorruptDataError(f"{path}: checksum mismatch in a committed WAL segment "
                                   f"(rows {seg.start}-{seg.stop - 1} of {self.name}); the file "
                                   "is damaged or truncated")
        try:
            if seg.file.endswith(".npz"):  # segments written before .npy ones
                with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                    return {k: npz[k.replace("/", "|")] for k in self.specs}
            return decode_rows(data, self.row_dtype)
        except Exception as exc:  # a CRC that matches a damaged file is the caller's to report
            raise CorruptDataError(f"{path}: unreadable WAL segment ({exc})") from exc

    # -- reading ---------------------------------------------------------------------------------
    def read_chunk(self, chunk: int, columns: list[str]) -> dict[str, np.ndarray]:
        """Rows of one chunk, CRC-checked; a sealed chunk comes from Zarr, the last from RAM."""
        lo = chunk * self.chunk
        if lo >= self.sealed:
            return {c: self.unsealed[c][lo - self.sealed: lo - self.sealed + self.chunk].copy()
                    for c in columns}
        out = {}
        for col in columns:
            key = f"{self.name}/{col}"
            try:
                values = self._read_sealed(col, chunk)
            except Exception as exc:  # a codec or the store failing to read a damaged file
                raise CorruptDataError(f"{self.root}/{key} chunk {chunk}: unreadable ({exc})") \
                    from exc
            expected = self.checksums.crcs.get((key, chunk))
            if expected is None and self.checksums.damage is not None:
                pass  # its line was lost with the log: decodable is all that can be checked
            elif expected is None or crc32(values) != expected:
                raise CorruptDataError(f"{self.root}/{key} chunk {chunk}: checksum mismatch "
                                       f"(rows {lo}-{lo + self.chunk - 1}); quarantined")
            out[col] = values
        return out

    def _read_sealed(self, col: str, chunk: int) -> np.ndarray:
        """Sealed chunk `chunk` of column `col`, unchecked: its file decoded here where
        `chunk_files` covers the layout (a missing file is an error, not zarr's fill value),
        else read through zarr."""
        arr = self.array(col)
        if col not in self._decoders:
            self._decoders[col] = chunk_decoder(arr)
        decode = self._decoders[col]
        if decode is None:
            return arr[chunk * self.chunk: (chunk + 1) * self.chunk]
        return decode(chunk_path(self.root / self.name / col, arr, chunk).read_bytes())

    def read_columns(self, on_damage: Callable[[int, str], None]) -> dict[str, np.ndarray]:
        """Every committed row (small tables: metadata, episodes, tails); a damaged sealed chunk
        comes back as `filler` rows after `on_damage(chunk, reason)`."""
        parts = []
        for c in range(self.sealed // self.chunk):
            try:
                parts.append(self.read_chunk(c, list(self.specs)))
            except CorruptDataError as exc:
                on_damage(c, str(exc))
                parts.append(self.filler(self.chunk))
        parts.append(self.unsealed)
        return {c: np.concatenate([p[c] for p in parts]) for c in self.specs}
