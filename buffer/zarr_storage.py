"""A buffer on disk: a Zarr v3 group of append-only tables and one atomic commit record.

Readers see only what `commit.json` covers. A writer that opens a buffer after a crash cuts off
anything written past the last commit; corrupt chunks are quarantined with a report, and the rest
stays usable. The layout is documented in buffer/SCHEMA.md.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from buffer.schema import (
    CHECKSUM_FILE,
    CHUNK_TARGET_BYTES,
    COMMIT_FILE,
    QUARANTINE_FILE,
    SCHEMA_VERSION,
    STEP_META,
    WAL_DIR,
    Header,
    chunk_rows,
    episode_specs,
    heavy_step_specs,
    tail_specs,
)
from buffer.storage import Storage
from buffer.table import ChecksumLog, ChunkedTable
from robot_rl.core import ArraySpec, CorruptDataError, DictSpec, StorageError
from robot_rl.core.durable import fsync_path, write_file_atomic

log = logging.getLogger(__name__)
INFO_CHUNK = 16384
OPEN_ATTEMPTS = 5
SMALL_CHUNK = 1024


def _info_specs() -> dict[str, ArraySpec]:
    return {k: ArraySpec((), d) for k, d in STEP_META.items()}


class ZarrStorage(Storage):
    """The tables `steps` (obs, action), `step_info`, `episodes` and `tails` plus the commit."""

    def __init__(self, path: Path, obs_spec: DictSpec | None = None,
                 action_spec: ArraySpec | None = None, *, readonly: bool = False,
                 fsync: bool = True, chunk_bytes: int = CHUNK_TARGET_BYTES) -> None:
        self.path = Path(path)
        self.readonly, self.fsync = readonly, fsync
        self.checksums = ChecksumLog(self.path / CHECKSUM_FILE, fsync)
        if not (self.path / COMMIT_FILE).exists():
            if readonly or obs_spec is None or action_spec is None:
                raise StorageError(f"{self.path}: no robot_rl buffer here (missing {COMMIT_FILE})")
            self._create(obs_spec, action_spec, chunk_bytes)
        self.group = zarr.open_group(str(self.path), mode="r" if readonly else "a")
        self.header = Header.from_attrs(str(self.path), dict(self.group.attrs))
        if obs_spec is not None and obs_spec != self.header.obs_spec:
            raise StorageError(f"{self.path}: stored observation spec differs from the robot's; "
                               "start a new run directory for a different robot or task")
        if action_spec is not None and action_spec != self.header.action_spec:
            raise StorageError(f"{self.path}: stored action spec differs from the robot's; "
                               "start a new run directory for a different robot or task")
        self.obs_spec, self.action_spec = self.header.obs_spec, self.header.action_spec
        self.tables = self._tables(self.group)
        self.quarantined: dict[tuple[str, int], str] = {}
        for attempt in range(OPEN_ATTEMPTS):
            seen = self._read_record()["commit"]
            try:
                self._open()
                break
            except CorruptDataError:  # a reader racing a live writer that deleted old segments
                moved_on = self._read_record()["commit"] != seen
                if not (self.readonly and moved_on) or attempt == OPEN_ATTEMPTS - 1:
                    raise

    @classmethod
    def open_existing(cls, path: Path, readonly: bool = True) -> ZarrStorage:
        """Open a buffer written earlier, taking its specs from the store itself."""
        return cls(Path(path), readonly=readonly)

    # -- layout ----------------------------------------------------------------------------------
    def _tables(self, group: zarr.Group) -> dict[str, ChunkedTable]:
        heavy = heavy_step_specs(self.obs_spec, self.action_spec)
        specs = {"steps": heavy, "step_info": _info_specs(), "episodes": episode_specs(),
                 "tails": tail_specs(self.obs_spec)}
        chunks = self.header.chunks
        return {name: ChunkedTable(self.path, group, name, s, chunks[name], self.checksums,
                                   self.fsync) for name, s in specs.items()}

    def _create(self, obs_spec: DictSpec, action_spec: ArraySpec, chunk_bytes: int) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        heavy = heavy_step_specs(obs_spec, action_spec)
        tails = chunk_rows(tail_specs(obs_spec), chunk_bytes)
        chunks = {"steps": chunk_rows(heavy, chunk_bytes), "step_info": INFO_CHUNK,
                  "episodes": SMALL_CHUNK, "tails": min(tails, 256)}
        self.header = Header(SCHEMA_VERSION, obs_spec, action_spec, chunks)
        self.obs_spec, self.action_spec = obs_spec, action_spec
        group = zarr.open_group(str(self.path), mode="w")
        for table in self._tables(group).values():
            table.create()
        group.attrs.update(self.header.to_attrs())
        (self.path / WAL_DIR).mkdir(exist_ok=True)
        record = {"schema_version": SCHEMA_VERSION, "commit": 0, "meta": {}, "robots": [],
                  "tasks": [], "next_episode": 0, "checksum_bytes": 0,
                  "tables": {n: {"rows": 0, "sealed": 0, "segments": []} for n in chunks}}
        (self.path / CHECKSUM_FILE).touch()
        write_file_atomic(self.path / COMMIT_FILE, json.dumps(record).encode(), fsync=self.fsync)

    # -- open and recover ------------------------------------------------------------------------
    def _read_record(self) -> dict[str, Any]:
        path = self.path / COMMIT_FILE
        try:
            record = json.loads(path.read_bytes())
            record["tables"], record["meta"]  # noqa: B018 - presence check
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(f"{path}: unreadable commit record ({exc}); it is written "
                                   "atomically, so the file was damaged outside robot_rl") from exc
        if record.get("schema_version") != self.header.version:
            raise StorageError(f"{path}: commit record schema {record.get('schema_version')} "
                               f"does not match the store's {self.header.version}")
        return record

    def _open(self) -> None:
        record = self._read_record()
        self.commit_no = int(record["commit"])
        self.meta: dict[str, Any] = dict(record["meta"])
        self.robots: list[str] = list(record["robots"])
        self.tasks: list[str] = list(record["tasks"])
        self.next_episode = int(record["next_episode"])
        self.checksums.load(int(record["checksum_bytes"]), writable=not self.readonly)
        for name, table in self.tables.items():
            table.restore(record["tables"][name], writable=not self.readonly)
        self._load_quarantine()
        if not self.readonly:
            self._remove_debris(record)

    def _remove_debris(self, record: dict[str, Any]) -> None:
        """Delete files of an unfinished commit: unlisted WAL segments, temp and partial files."""
        live = {s["file"] for t in record["tables"].values() for s in t["segments"]}
        for f in (self.path / WAL_DIR).iterdir():
            if f"{WAL_DIR}/{f.name}" not in live:
                f.unlink()
        for pattern in ("**/*.partial", "*.tmp"):
            for f in self.path.glob(pattern):
                f.unlink()

    def _load_quarantine(self) -> None:
        path = self.path / QUARANTINE_FILE
        if path.exists():
            for item in json.loads(path.read_text()):
                table, chunk = item["table"], int(item["chunk"])
                if chunk < self.tables[table].sealed // self.tables[table].chunk:
                    self.quarantined[(table, chunk)] = item["reason"]  # (else: not committed)

    def quarantine(self, table: str, chunk: int, reason: str) -> None:
        """Exclude one chunk's rows from sampling, log why, and remember it in quarantine.json."""
        chunk = int(chunk)
        if (table, chunk) in self.quarantined:
            return
        log.error("buffer %s: quarantined %s chunk %d: %s", self.path, table, chunk, reason)
        self.quarantined[(table, chunk)] = reason
        if not self.readonly:
            items = [{"table": t, "chunk": c, "reason": r}
                     for (t, c), r in self.quarantined.items()]
            write_file_atomic(self.path / QUARANTINE_FILE, json.dumps(items).encode(),
                              fsync=self.fsync)

    def quarantined_rows(self) -> np.ndarray:
        """A bool mask over committed step rows: True where a chunk of the row is quarantined."""
        mask = np.zeros(self.steps, bool)
        for (table, chunk), _ in self.quarantined.items():
            if table in ("steps", "step_info"):
                size = self.tables[table].chunk
                mask[chunk * size: (chunk + 1) * size] = True
        return mask

    # -- writing ---------------------------------------------------------------------------------
    def stage(self, table: str, columns: dict[str, np.ndarray]) -> None:
        if self.readonly:
            raise StorageError(f"{self.path}: opened read-only (prior data); it cannot be written")
        self.tables[table].stage(columns)

    def commit(self, meta: dict[str, Any] | None, robots: list[str], tasks: list[str],
               next_episode: int) -> None:
        """Write staged rows, then atomically replace the commit record (with `meta` in it)."""
        if self.readonly:
            raise StorageError(f"{self.path}: opened read-only (prior data); it cannot be written")
        commit_no = self.commit_no + 1
        new_meta = self.meta if meta is None else dict(meta)
        json.dumps(new_meta)  # refuse non-JSON meta before anything is written
        checksum_bytes = self.checksums.committed_bytes
        try:
            entries, states, obsolete = {}, {}, []
            for name, table in self.tables.items():
                entries[name], old, states[name] = table.write(commit_no)
                obsolete += old
            record = {"schema_version": self.header.version, "commit": commit_no,
                      "meta": new_meta, "robots": robots, "tasks": tasks,
                      "next_episode": next_episode, "checksum_bytes": self.checksums.flush(),
                      "tables": entries}
            write_file_atomic(self.path / COMMIT_FILE, json.dumps(record).encode(),
                              fsync=self.fsync)
        except BaseException:
            self.checksums.rollback(checksum_bytes)  # staged rows stay staged for a retry
            raise
        for name, table in self.tables.items():
            table.apply(states[name])
        self.meta = new_meta
        if self.fsync:
            fsync_path(self.path)
        self.commit_no, self.robots, self.tasks = commit_no, list(robots), list(tasks)
        self.next_episode = next_episode
        for f in obsolete:
            f.unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return self.tables["steps"].rows

    @property
    def episodes(self) -> int:
        return self.tables["episodes"].rows

    def read_step_info(self) -> dict[str, np.ndarray]:
        """All per-step metadata; rows of a damaged chunk are zero and quarantined."""
        table = self.tables["step_info"]
        parts = []
        for c in range(-(-table.rows // table.chunk)):
            try:
                parts.append(table.read_chunk(c, list(table.specs)))
            except CorruptDataError as exc:
                self.quarantine("step_info", c, str(exc))
                n = min(table.chunk, table.rows - c * table.chunk)
                parts.append({k: np.zeros(n, s.dtype) for k, s in table.specs.items()})
        if not parts:
            return {k: np.zeros(0, s.dtype) for k, s in table.specs.items()}
        return {k: np.concatenate([p[k] for p in parts]) for k in table.specs}

    def read_episodes(self) -> dict[str, np.ndarray]:
        """Per-episode columns in the order episodes ended (see schema.EPISODE_COLUMNS)."""
        table = self.tables["episodes"]
        cols = table.read_columns(list(table.specs))
        cols["start"] = cols["first_row"]
        return cols

    def read_tails(self) -> dict[str, np.ndarray]:
        table = self.tables["tails"]
        return table.read_columns(list(table.specs))

    def read_chunk(self, chunk: int) -> dict[str, np.ndarray]:
        """Observations and actions of one `steps` chunk, checksum-verified."""
        table = self.tables["steps"]
        return table.read_chunk(chunk, list(table.specs))

    def read_rows(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Observations and actions of arbitrary rows (for tools; samplers use the cache)."""
        size = self.tables["steps"].chunk
        out = {k: np.zeros((len(rows), *s.shape), s.dtype)
               for k, s in self.tables["steps"].specs.items()}
        for chunk in np.unique(rows // size):
            sel = np.flatnonzero(rows // size == chunk)
            data = self.read_chunk(int(chunk))
            for k in out:
                out[k][sel] = data[k][rows[sel] - chunk * size]
        return out

    def read_steps(self) -> dict[str, np.ndarray]:
        """Every committed step column, heavy ones included: O(buffer), for tools and tests."""
        steps = self.read_rows(np.arange(self.steps))
        steps.update(self.read_step_info())
        return steps

    def verify(self) -> list[str]:
        """Read and check every committed chunk; quarantine and report the damaged ones."""
        problems = []
        for name, table in self.tables.items():
            for c in range(table.sealed // table.chunk):
                try:
                    table.read_chunk(c, list(table.specs))
                except CorruptDataError as exc:
                    problems.append(str(exc))
                    if name in ("steps", "step_info"):
                        self.quarantine(name, c, str(exc))
        return problems

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    @property
    def chunk_rows(self) -> int:
        return self.tables["steps"].chunk
