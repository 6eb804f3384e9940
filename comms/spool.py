"""The edge's write-ahead spool: numbered transitions on local disk until the gateway acks them.

An append-only file of frames `<u32 length><u32 crc32><msgpack record>`; `append` fsyncs before
it returns, so a transition that got its sequence number survives a crash of the edge. A torn
last frame (a crash mid-write) is cut off on open. The file is rewritten with only the unacked
entries when everything is acked or when acked data dominates it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from comms.codec import CodecError, decode, encode
from robot_rl.core import CommsError
from robot_rl.core.durable import fsync_path

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")


class SpoolFullError(CommsError):
    """The spool holds more unacked data than allowed: the gateway has been gone too long."""


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    data: bytes  # one encoded transition
    episode_end: bool | None  # None: the episode goes on; else its success
    previous_end: bool | None = None  # set when the episode before this entry was left open


@dataclass
class _Stream:
    next_seq: int = 0
    acked: int = -1
    entries: dict[int, tuple[int, int, bool | None]] | None = None  # seq -> offset, length, end
    episode_open: bool = False  # the last entry did not end its episode

    def __post_init__(self) -> None:
        self.entries = {} if self.entries is None else self.entries


class Spool:
    """Durable, numbered, per-stream queues of encoded transitions in one file."""

    def __init__(self, path: Path, max_pending_bytes: int = 4 << 30) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_pending_bytes = max_pending_bytes
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._pending_bytes = 0
        self._file = open(self.path, "a+b")  # noqa: SIM115 - held open for the spool's lifetime
        self._recover()

    # -- recovery ----------------------------------------------------------------------------------
    def _recover(self) -> None:
        f = self._file
        f.seek(0)
        offset = 0
        while True:
            header = f.read(_FRAME.size)
            if len(header) < _FRAME.size:
                break
            length, crc = _FRAME.unpack(header)
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            try:
                self._apply(decode(payload), offset + _FRAME.size, length)
            except (CodecError, KeyError, TypeError, ValueError):
                break
            offset += _FRAME.size + length
        size = f.seek(0, os.SEEK_END)
        if size > offset:
            log.warning("spool %s: cutting %d bytes of a torn last frame", self.path, size - offset)
            f.truncate(offset)
            os.fsync(f.fileno())

    def _apply(self, rec: dict, offset: int, length: int) -> None:
        kind = rec["k"]
        if kind == "head":
            for sid, nxt in rec["next"].items():
                st = self._streams.setdefault(sid, _Stream())
                st.next_seq, st.acked = int(nxt), int(rec["acked"][sid])
                st.episode_open = bool(rec["open"][sid])
        elif kind == "item":
            st = self._streams.setdefault(rec["s"], _Stream())
            st.entries[rec["q"]] = (offset, length, rec["end"])
            st.next_seq = max(st.next_seq, rec["q"] + 1)
            st.episode_open = rec["end"] is None
            self._pending_bytes += length
        elif kind == "ack":
            self._drop_acked(self._streams.setdefault(rec["s"], _Stream()), rec["q"])
        else:
            raise ValueError(f"unknown spool record {kind!r}")

    def _drop_acked(self, st: _Stream, last_seq: int) -> None:
        for seq in [s for s in st.entries if s <= last_seq]:
            self._pending_bytes -= st.entries.pop(seq)[1]
        st.acked = max(st.acked, last_seq)

    # -- writing -----------------------------------------------------------------------------------
    def _write(self, records: Sequence[dict], sync: bool) -> list[tuple[int, int]]:
        f = self._file
        offset = f.seek(0, os.SEEK_END)
        spans, chunks = [], []
        for rec in records:
            payload = encode(rec)
            chunks.append(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
            spans.append((offset + _FRAME.size, len(payload)))
            offset += len(chunks[-1])
        f.write(b"".join(chunks))
        f.flush()
        if sync:
            os.fsync(f.fileno())
        return spans

    def append(self, stream_id: str, items: Sequence[tuple[bytes, bool | None]],
               previous_end: bool | None = None) -> int:
        """Number and durably store encoded transitions (with each one's episode end, if any);
        `previous_end` closes an episode left open before them. Returns the first seq."""
        with self._lock:
            size = sum(len(data) for data, _ in items)
            if self._pending_bytes + size > self.max_pending_bytes:
                raise SpoolFullError(
                    f"spool {self.path} holds {self._pending_bytes} unacked bytes (limit "
                    f"{self.max_pending_bytes}); the gateway has been unreachable too long"
                )
            st = self._streams.setdefault(stream_id, _Stream())
            first = st.next_seq
            records = [{"k": "item", "s": stream_id, "q": first + i, "end": end, "t": data}
                       for i, (data, end) in enumerate(items)]
            if previous_end is not None and records:
                records[0]["pe"] = previous_end
            for i, (offset, length) in enumerate(self._write(records, sync=True)):
                st.entries[first + i] = (offset, length, items[i][1])
                self._pending_bytes += length
            st.next_seq = first + len(items)
            st.episode_open = bool(items) and items[-1][1] is None
            return first

    def ack(self, stream_id: str, last_seq: int) -> None:
        """Forget entries up to `last_seq`; the file is rewritten when it is mostly acked data."""
        with self._lock:
            st = self._streams.setdefault(stream_id, _Stream())
            if last_seq <= st.acked:
                return
            self._drop_acked(st, last_seq)
            self._write([{"k": "ack", "s": stream_id, "q": last_seq}], sync=False)
            size = self._file.seek(0, os.SEEK_END)
            if self._pending_bytes == 0 or size > 4 * self._pending_bytes + (64 << 20):
                self._rewrite()

    def rebase(self, stream_id: str, gateway_last_seq: int) -> None:
        """Renumber what is pending to follow the gateway's high-water mark when the two cannot
        be reconciled by an ack: the gateway has seen more than this spool ever numbered (the
        spool was lost), or less than it acked (its buffer lost a damaged last commit)."""
        with self._lock:
            st = self._streams.setdefault(stream_id, _Stream())
            if st.acked <= gateway_last_seq < st.next_seq:
                return
            shift = gateway_last_seq + 1 - (min(st.entries) if st.entries else st.next_seq)
            if gateway_last_seq < st.acked:
                log.error("spool %s: the gateway lost seqs %d-%d of stream %s after acking them; "
                          "they are gone from this spool too", self.path, gateway_last_seq + 1,
                          st.acked, stream_id)
            log.warning("spool %s: stream %s restarts after the gateway's seq %d (shift %d)",
                        self.path, stream_id, gateway_last_seq, shift)
            st.entries = {seq + shift: v for seq, v in st.entries.items()}
            st.next_seq += shift
            st.acked = gateway_last_seq
            self._rewrite()

    def _rewrite(self) -> None:
        """Replace the file by a head record plus the unacked entries (atomic rename)."""
        head = {"k": "head", "next": {s: st.next_seq for s, st in self._streams.items()},
                "acked": {s: st.acked for s, st in self._streams.items()},
                "open": {s: st.episode_open for s, st in self._streams.items()}}
        records: list[dict] = [head]
        order: list[tuple[_Stream, int]] = []
        for st in self._streams.values():
            for seq in sorted(st.entries):
                offset, length, end = st.entries[seq]
                rec = self._read_record(offset, length)
                records.append({**rec, "q": seq})
                order.append((st, seq))
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            offset = 0
            for i, rec in enumerate(records):
                payload = encode(rec)
                out.write(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
                if i:
                    st, seq = order[i - 1]
                    st.entries[seq] = (offset + _FRAME.size, len(payload), st.entries[seq][2])
                offset += _FRAME.size + len(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        fsync_path(self.path.parent)
        self._file.close()
        self._file = open(self.path, "a+b")  # noqa: SIM115
        self._pending_bytes = sum(
            v[1] for st in self._streams.values() for v in st.entries.values())

    # -- reading -----------------------------------------------------------------------------------
    def _read_record(self, offset: int, length: int) -> dict:
        return decode(os.pread(self._file.fileno(), length, offset))

    def pending(self, stream_id: str, after_seq: int, max_items: int, max_bytes: int
                ) -> list[SpoolEntry]:
        """Unacked entries of a stream after `after_seq`, in order, at most max_items/max_bytes
        (always at least one when any is pending)."""
        with self._lock:
            st = self._streams.get(stream_id)
            if st is None:
                return []
            out: list[SpoolEntry] = []
            total = 0
            seq = max(after_seq, st.acked) + 1
            while seq in st.entries and len(out) < max_items:
                offset, length, end = st.entries[seq]
                if out and total + length > max_bytes:
                    break
                rec = self._read_record(offset, length)
                out.append(SpoolEntry(seq, rec["t"], end, rec.get("pe")))
                total += length
                seq += 1
            return out

    def unacked_bytes(self, stream_id: str, through_seq: int) -> int:
        """Bytes of a stream's unacked entries up to `through_seq` (what is in flight once
        everything up to there was sent)."""
        with self._lock:
            st = self._streams.get(stream_id)
            if st is None:
                return 0
            return sum(st.entries[seq][1] for seq in range(st.acked + 1, through_seq + 1)
                       if seq in st.entries)

    def streams(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def next_seq(self, stream_id: str) -> int:
        with self._lock:
            st = self._streams.get(stream_id)
            return 0 if st is None else st.next_seq

    def acked(self, stream_id: str) -> int:
        with self._lock:
            st = self._streams.get(stream_id)
            return -1 if st is None else st.acked

    def episode_open(self, stream_id: str) -> bool:
        """Whether the last transition spooled for the stream left its episode open."""
        with self._lock:
            st = self._streams.get(stream_id)
            return st is not None and st.episode_open

    def pending_count(self) -> int:
        with self._lock:
            return sum(len(st.entries) for st in self._streams.values())

    def close(self) -> None:
        with self._lock:
            self._file.close()
