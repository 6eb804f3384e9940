"""The next observations of open episodes' last rows, durable at every commit but never a row of
the `tails` table.

An acked transition's next observation must survive a crash even while its episode is open, yet
it is usually the robot's next observation, which the next row stores anyway. So each commit
writes the ones that are new since the last commit to one file, `wal/open-<commit>.npy` (a
structured array: a field per observation key, and `row`; no pickle), and the
commit record lists the files still needed (`open_tails`: file, CRC-32, the step rows it holds);
a file is dropped once none of its rows is an open episode's last row any more. A fleet of robots
committing many times a second then costs one observation per robot per commit on disk for a
moment, instead of a tail row kept for ever, on disk and in every reader's RAM.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from buffer.rows_file import decode_rows, encode_rows, rows_dtype
from robot_rl.core import ArraySpec, CorruptDataError, DictSpec, Observation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenTailFile:
    """One file of pending next observations: which step rows they belong to, its CRC-32."""

    file: str
    crc: int
    rows: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "crc": self.crc, "rows": list(self.rows)}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> OpenTailFile:
        return cls(str(entry["file"]), int(entry["crc"]), tuple(int(r) for r in entry["rows"]))


class OpenTails:
    """The live open-tail files of a buffer (`files`), written and read for its storage."""

    def __init__(self, obs_spec: DictSpec, root: Path, fsync: bool) -> None:
        self.root, self.keys, self.fsync = root, list(obs_spec), fsync
        self.dtype = rows_dtype({**obs_spec.fields, "row": ArraySpec((), "int64")})
        self.files: list[OpenTailFile] = []
        self._read_before: dict[OpenTailFile, dict[int, Observation]] = {}

    def restore(self, entries: list[Mapping[str, Any]], earlier: OpenTails | None = None) -> None:
        """Take the files a commit record lists (nothing is read until `read`). `earlier`: these
        tails as a reader read them at an earlier commit; a file never changes once a record
        lists it (its name is its commit's, its CRC is listed), so what it read of the files
        still listed is taken over, not read again."""
        self.files = [OpenTailFile.from_json(e) for e in entries]
        self._read_before = {} if earlier is None else {
            f: earlier._read_before[f] for f in self.files if f in earlier._read_before}

    def read(self) -> tuple[dict[int, Observation], list[str]]:
        """Step row -> pending next observation, from every live file; a damaged or missing
        file costs only its observations (those rows keep no next observation), and says why."""
        found: dict[int, Observation] = {}
        problems = []
        kept = {}  # only the files listed now: a writer replaces `files` at each commit
        for f in self.files:
            try:
                kept[f] = self._read_before[f] if f in self._read_before else self._read(f)
                found.update(kept[f])
            except CorruptDataError as exc:
                problems.append(f"{exc}; the open episodes ending on rows {list(f.rows)} have "
                                "no next observation for them")
        self._read_before = kept
        return found, problems

    def _read(self, f: OpenTailFile) -> dict[int, Observation]:
        path = self.root / f.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorruptDataError(f"{path}: open-episode tail file is missing ({exc})") from exc
        if zlib.crc32(data) != f.crc:
            raise CorruptDataError(f"{path}: checksum mismatch in an open-episode tail file")
        try:
            cols = decode_rows(data, self.dtype)
        except Exception as exc:  # a CRC that matches a damaged file is the caller's to report
            raise CorruptDataError(f"{path}: unreadable open-episode tail file ({exc})") from exc
        return {int(r): {k: cols[k][i].copy() for k in self.keys}
                for i, r in enumerate(cols["row"])}

    def write(self, commit_no: int, pending: Mapping[int, Observation]
              ) -> tuple[list[OpenTailFile], list[Path], list[Path]]:
        """Keep `pending` (step row -> next observation, every open episode's) durable: the
        files the next record lists, those it makes obsolete, and those to fsync first."""
        stored = {r for f in self.files for r in f.rows}
        live = [f for f in self.files if not pending.keys().isdisjoint(f.rows)]
        obsolete = [self.root / f.file for f in self.files if f not in live]
        new = sorted(pending.keys() - stored)
        if not new:
            return live, obsolete, []
        cols = {k: [pending[r][k] for r in new] for k in self.keys}
        data = encode_rows({**cols, "row": np.array(new, np.int64)}, self.dtype)
        name = f"wal/open-{commit_no:010d}.npy"
        (self.root / name).write_bytes(data)
        live.append(OpenTailFile(name, zlib.crc32(data), tuple(new)))
        return live, obsolete, [self.root / name] if self.fsync else []
