"""The checksum log: the CRC-32 of every sealed chunk's raw values, one append-only line each.

The commit record says how many of its bytes are valid, so the lines of an unfinished commit are
cut off when the buffer is opened; a damaged line costs only its chunk's verification.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def crc32(values: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(values)).cast("B"))


class ChecksumLog:
    """Append-only `column chunk crc` lines; the commit record says how many bytes are valid."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self.crcs: dict[tuple[str, int], int] = {}
        self.pending: list[tuple[str, int, int]] = []
        self.committed_bytes = 0
        self.damage: str | None = None  # why some sealed chunks have no CRC to check

    def load(self, committed_bytes: int, writable: bool,
             earlier: ChecksumLog | None = None) -> None:
        """Read the committed part; a writer also cuts off lines of an unfinished commit.
        `earlier`: this log as a reader loaded it at an earlier commit; the log only grows, so
        its lines are taken over and only those appended since are read."""
        start, data = 0, b""
        if self.path.exists():
            with open(self.path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                if (earlier is not None and earlier.damage is None
                        and earlier.committed_bytes <= min(committed_bytes, size)):
                    self.crcs, start = dict(earlier.crcs), earlier.committed_bytes
                f.seek(start)
                data = f.read()
        if start + len(data) < committed_bytes:
            self.damage = (f"{self.path}: truncated to {start + len(data)} of {committed_bytes} "
                           "committed bytes")
            committed_bytes = start + data.rfind(b"\n") + 1
        if writable and start + len(data) > committed_bytes:
            with open(self.path, "r+b") as f:
                f.truncate(committed_bytes)
        self.committed_bytes = committed_bytes
        for line in data[:committed_bytes - start].splitlines():
            try:  # a damaged line costs its chunk (no CRC: quarantined when read)
                column, chunk, crc = line.decode().split()
                self.crcs[(column, int(chunk))] = int(crc, 16)
            except ValueError:
                self.damage = f"{self.path}: damaged line {line[:60]!r}"
        if self.damage is not None:  # the chunks stay readable, their values unverified
            self.damage += "; chunks without a checksum line are read unverified"
            log.error("%s", self.damage)

    def rollback(self, committed_bytes: int) -> None:
        """Forget lines of a commit that failed."""
        self.pending.clear()
        if self.committed_bytes != committed_bytes:
            with open(self.path, "r+b") as f:
                f.truncate(committed_bytes)
            self.committed_bytes = committed_bytes

    def add(self, column: str, chunk: int, crc: int) -> None:
        self.pending.append((column, chunk, crc))

    def flush(self) -> list[Path]:
        """Append pending lines (`committed_bytes` then covers them for the record); the files
        to fsync before the record names that length."""
        if not self.pending:
            return []
        text = "".join(f"{c} {i} {crc:08x}\n" for c, i, crc in self.pending).encode()
        with open(self.path, "ab") as f:
            f.write(text)
        for column, chunk, crc in self.pending:
            self.crcs[(column, chunk)] = crc
        self.committed_bytes += len(text)
        self.pending.clear()
        return [self.path] if self.fsync else []
