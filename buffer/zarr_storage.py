"""A buffer on disk: a Zarr v3 group of append-only tables and one atomic commit record.

Readers see only what `commit.json` covers. A writer that opens a buffer after a crash cuts off
anything written past the last commit; corrupt chunks are quarantined with a report, and the rest
stays usable. The layout is documented in buffer/SCHEMA.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from buffer.checksums import ChecksumLog
from buffer.flush import fsync_all
from buffer.open_tails import OpenTails
from buffer.record import open_record, sealed_record
from buffer.schema import (
    CHECKSUM_FILE,
    CHUNK_TARGET_BYTES,
    COMMIT_FILE,
    LOCK_FILE,
    OLDEST_READABLE,
    PREV_COMMIT_FILE,
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
from buffer.table import ChunkedTable, Damage
from buffer.values import value_problems
from robot_rl.core import ArraySpec, CorruptDataError, DictSpec, Observation, StorageError
from robot_rl.core.durable import fsync_path, write_file_atomic
from robot_rl.core.locks import WriterLock

log = logging.getLogger(__name__)
INFO_CHUNK = 16384
OPEN_ATTEMPTS = 5
# how long files no longer listed by the latest record are kept: a reader following the writer
# may still be reading an older record that lists them (a fast writer commits many times a second)
OBSOLETE_GRACE_S = 15.0
SMALL_CHUNK = 1024
# column values that mark a row lost to damage (its other columns are zero)
LOST_ROW_MARKS = {"step_info": {"episode_id": -1, "prev_row": -1},
                  "episodes": {"episode_id": -1}, "tails": {"row": -1}}


def wal_files(record: dict[str, Any]) -> set[str]:
    """The WAL files a commit record needs: table segments and open-episode tails."""
    return ({s["file"] for t in record["tables"].values() for s in t["segments"]}
            | {f["file"] for f in record.get("open_tails", [])})


def _info_specs() -> dict[str, ArraySpec]:
    return {k: ArraySpec((), d) for k, d in STEP_META.items()}


def open_header(path: Path, readonly: bool = True) -> tuple[zarr.Group, Header]:
    """A buffer's Zarr group and header, nothing else read; a damaged zarr.json is one
    StorageError line."""
    try:
        group = zarr.open_group(str(path), mode="r" if readonly else "a")
        attrs = dict(group.attrs)
    except Exception as exc:  # zarr raises JSON, Unicode and its own errors alike
        raise StorageError(f"{path}/zarr.json: the buffer header is damaged "
                           f"({type(exc).__name__}: {str(exc)[:80]}); restore it from a "
                           "backup or from a run recorded with the same robot and task") from None
    return group, Header.from_attrs(str(path), attrs)


def stored_specs(path: Path) -> tuple[DictSpec, ArraySpec]:
    """The observation and action specs a buffer was created with, from its header alone."""
    header = open_header(Path(path))[1]
    return header.obs_spec, header.action_spec


class ZarrStorage(Storage):
    """The tables `steps` (obs, action), `step_info`, `episodes` and `tails` plus the commit."""

    def __init__(self, path: Path, obs_spec: DictSpec | None = None,
                 action_spec: ArraySpec | None = None, *, readonly: bool = False,
                 fsync: bool = True, chunk_bytes: int = CHUNK_TARGET_BYTES,
                 earlier: ZarrStorage | None = None) -> None:
        self.path = Path(path)
        self.readonly, self.fsync = readonly, fsync
        self._earlier = earlier  # (see `follow`; dropped once open)
        self.checksums = ChecksumLog(self.path / CHECKSUM_FILE, fsync)
        exists = any((self.path / f).exists() for f in (COMMIT_FILE, PREV_COMMIT_FILE))
        if not exists and (readonly or obs_spec is None or action_spec is None):
            raise StorageError(f"{self.path}: no robot_rl buffer here (missing {COMMIT_FILE})")
        # one writer: taken before anything on disk is created, recovered or cut back
        self.lock = None if readonly else WriterLock(self.path / LOCK_FILE, f"buffer {self.path}")
        if self.lock is not None:
            self.lock.acquire()
        try:
            if not exists:
                self._create(obs_spec, action_spec, chunk_bytes)
            self._open_store(obs_spec, action_spec)
        except BaseException:
            self.close()
            raise
        finally:
            self._earlier = None

    def close(self) -> None:
        """Release the writer lock (committed data needs no flushing); idempotent."""
        if self.lock is not None:
            self.lock.release()

    def _open_store(self, obs_spec: DictSpec | None, action_spec: ArraySpec | None) -> None:
        self.group, self.header = self._open_header()
        if not self.readonly and self.header.version < SCHEMA_VERSION:
            # what this writer adds (open-tail files, .npy segments) an older reader would take
            # for damage: from now on it refuses the store with a clear line instead
            self.group.attrs["schema_version"] = SCHEMA_VERSION
            self.header = dataclasses.replace(self.header, version=SCHEMA_VERSION)
        if obs_spec is not None and obs_spec != self.header.obs_spec:
            raise StorageError(f"{self.path}: stored observation spec differs from the robot's; "
                               "start a new run directory for a different robot or task")
        if action_spec is not None and action_spec != self.header.action_spec:
            raise StorageError(f"{self.path}: stored action spec differs from the robot's; "
                               "start a new run directory for a different robot or task")
        self.obs_spec, self.action_spec = self.header.obs_spec, self.header.action_spec
        self.tables = self._tables(self.group)
        self.open_tails = OpenTails(self.obs_spec, self.path, self.fsync)
        self.quarantined: dict[tuple[str, int], str] = {}  # damaged sealed chunks
        self.lost: list[Damage] = []  # rows of damaged WAL segments
        self.fallback: str | None = None  # why the previous commit record had to be used
        # (since when, files): segment files the previous record (or a reader's) still lists
        self._deferred: list[tuple[float, list[Path]]] = []
        for attempt in range(OPEN_ATTEMPTS):
            seen = self.latest_commit_no()
            try:
                self._open()
            except CorruptDataError:
                if not self.readonly or attempt == OPEN_ATTEMPTS - 1:
                    raise
                continue
            # a reader racing a live writer that deleted segments meanwhile: read again
            if not (self.readonly and self.lost and self.latest_commit_no() != seen):
                break

    @classmethod
    def open_existing(cls, path: Path, readonly: bool = True) -> ZarrStorage:
        """Open a buffer written earlier, taking its specs from the store itself."""
        return cls(Path(path), readonly=readonly)

    def follow(self) -> ZarrStorage:
        """A reader: the buffer at its latest commit, as `open_existing` opens it, but reading
        only what was committed since this object's commit (its header, opened arrays and WAL
        rows are taken over: nothing a commit wrote ever changes)."""
        if not self.readonly:
            raise StorageError(f"{self.path}: only a reader follows the writer's commits")
        return type(self)(self.path, readonly=True, earlier=self)

    # -- layout ----------------------------------------------------------------------------------
    def _open_header(self) -> tuple[zarr.Group, Header]:
        if self._earlier is not None:
            return self._earlier.group, self._earlier.header
        return open_header(self.path, self.readonly)

    def _tables(self, group: zarr.Group) -> dict[str, ChunkedTable]:
        heavy = heavy_step_specs(self.obs_spec, self.action_spec)
        specs = {"steps": heavy, "step_info": _info_specs(), "episodes": episode_specs(),
                 "tails": tail_specs(self.obs_spec)}
        chunks = self.header.chunks
        return {name: ChunkedTable(self.path, group, name, s, chunks[name], self.checksums,
                                   self.fsync, LOST_ROW_MARKS.get(name))
                for name, s in specs.items()}

    def _create(self, obs_spec: DictSpec, action_spec: ArraySpec, chunk_bytes: int) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        heavy = heavy_step_specs(obs_spec, action_spec)
        tails = chunk_rows(tail_specs(obs_spec), chunk_bytes)
        chunks = {"steps": chunk_rows(heavy, chunk_bytes), "step_info": INFO_CHUNK,
                  "episodes": SMALL_CHUNK, "tails": min(tails, 256)}
        self.header = Header(SCHEMA_VERSION, obs_spec, action_spec, chunks)
        self.obs_spec, self.action_spec = obs_spec, action_spec
        for leftover in self.path.iterdir():  # of a creation that died before its first record
            if leftover.name != LOCK_FILE:  # ... but the lock this writer holds stays
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        group = zarr.open_group(str(self.path), mode="a")
        for table in self._tables(group).values():
            table.create()
        group.attrs.update(self.header.to_attrs())
        (self.path / WAL_DIR).mkdir(exist_ok=True)
        record = {"schema_version": SCHEMA_VERSION, "commit": 0, "meta": {}, "robots": [],
                  "tasks": [], "next_episode": 0, "checksum_bytes": 0,
                  "tables": {n: {"rows": 0, "sealed": 0, "segments": []} for n in chunks},
                  "open_tails": []}
        (self.path / CHECKSUM_FILE).touch()
        write_file_atomic(self.path / COMMIT_FILE, sealed_record(record), fsync=self.fsync)

    # -- open and recover ------------------------------------------------------------------------
    def latest_commit_no(self) -> int:
        return int(self._read_record()["commit"])

    def _read_record(self) -> dict[str, Any]:
        """The latest intact commit record: commit.json, else the previous one (its rows only
        are lost, and `fallback` says so)."""
        path = self.path / COMMIT_FILE
        try:
            record = self._parse_record(path)
            self.fallback = None
            return record
        except CorruptDataError as exc:
            damage = exc
        prev = self.path / PREV_COMMIT_FILE
        if not prev.exists():
            raise damage
        record = self._parse_record(prev)
        if path.exists():  # (a missing one: a crash between the two renames; nothing lost)
            self.fallback = (f"{damage}; using the previous record (commit {record['commit']}), "
                             "so the rows of the last commit are lost")
        return record

    def _parse_record(self, path: Path) -> dict[str, Any]:
        try:
            record = open_record(path.read_bytes())
            record["tables"], record["meta"], record["commit"]  # noqa: B018 - presence check
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(f"{path}: unreadable commit record ({exc}); it is written "
                                   "atomically, so the file was damaged outside robot_rl") from exc
        version = record.get("schema_version")
        if not (isinstance(version, int) and OLDEST_READABLE <= version <= self.header.version):
            raise StorageError(f"{path}: commit record schema {record.get('schema_version')} "
                               f"does not match the store's {self.header.version}")
        return record

    def _write_record(self, record: dict[str, Any], unsynced: list[Path] | None = None) -> None:
        """Make `record` the latest commit and keep the one it replaces as the fallback; the
        files in `unsynced` are fsynced together with the new record before it is renamed."""
        tmp = self.path / (COMMIT_FILE + ".tmp")
        tmp.write_bytes(sealed_record(record))
        if self.fsync:
            fsync_all([*(unsynced or []), tmp])
        latest = self.path / COMMIT_FILE
        if latest.exists() and self.fallback is None:
            # the latest becomes the fallback by a second name, not by moving it: a reader
            # opening the buffer meanwhile always finds commit.json
            keep = self.path / (PREV_COMMIT_FILE + ".tmp")
            keep.unlink(missing_ok=True)
            os.link(latest, keep)
            os.replace(keep, self.path / PREV_COMMIT_FILE)
        os.replace(tmp, latest)
        self.fallback = None

    def _open(self) -> None:
        record = self._read_record()
        if self.fallback is not None:
            log.error("buffer %s: %s", self.path, self.fallback)
        self.commit_no = int(record["commit"])
        self.meta: dict[str, Any] = dict(record["meta"])
        self.robots: list[str] = list(record["robots"])
        self.tasks: list[str] = list(record["tasks"])
        self.next_episode = int(record["next_episode"])
        self.checksums.load(int(record["checksum_bytes"]), writable=not self.readonly,
                            earlier=None if self._earlier is None else self._earlier.checksums)
        for name, table in self.tables.items():
            table.restore(record["tables"][name], writable=not self.readonly,
                          earlier=None if self._earlier is None else self._earlier.tables[name])
        self.open_tails.restore(record.get("open_tails", []),  # (older records have none)
                                None if self._earlier is None else self._earlier.open_tails)
        self._load_quarantine()
        unique = {(d.table, d.start, d.stop): d for t in self.tables.values() for d in t.damaged}
        self.lost = list(unique.values())
        for damage in self.lost:
            log.error("buffer %s: lost %s rows %d-%d: %s", self.path, damage.table,
                      damage.start, damage.stop - 1, damage.reason)
        if not self.readonly:
            self._remove_debris(record)
            if self.lost:
                self._save_quarantine()
            if self.checksums.damage is not None:  # a damaged log: checksum what still decodes
                for name, table in self.tables.items():
                    for chunk, reason in table.reseal_unverified().items():
                        self.quarantine(name, chunk, reason)
                unsynced = self.checksums.flush()
                record = {**record, "checksum_bytes": self.checksums.committed_bytes}
                self._write_record(record, unsynced)  # both records intact before the next commit
            elif self.fallback is not None:
                self._write_record(record)

    def _remove_debris(self, record: dict[str, Any]) -> None:
        """Delete files of an unfinished commit: WAL segments neither record lists, temp and
        partial files. Segments only the previous record lists are deleted at the next commit."""
        live = wal_files(record)
        previous = set()
        prev_path = self.path / PREV_COMMIT_FILE
        if prev_path.exists() and self.fallback is None:
            try:
                prev = self._parse_record(prev_path)
                previous = wal_files(prev)
            except StorageError:
                pass  # a damaged fallback record: nothing to keep for it
        for f in (self.path / WAL_DIR).iterdir():
            name = f"{WAL_DIR}/{f.name}"
            if name not in live and name not in previous:
                f.unlink()
        self._deferred = [(time.monotonic(), [self.path / f for f in sorted(previous - live)])]
        for pattern in ("**/*.partial", "*.tmp"):
            for f in self.path.glob(pattern):
                f.unlink()

    def _load_quarantine(self) -> None:
        """Damage found earlier: sealed chunks, and WAL rows lost before a merge rewrote them."""
        path = self.path / QUARANTINE_FILE
        if not path.exists():
            return
        try:
            items = json.loads(path.read_bytes())
        except ValueError as exc:
            log.error("buffer %s: %s unreadable (%s); damage is found again by --verify",
                      self.path, QUARANTINE_FILE, exc)
            return
        for item in items:
            table = self.tables[item["table"]]
            if "chunk" in item:
                chunk = int(item["chunk"])
                if chunk < table.sealed // table.chunk:
                    self.quarantined[(item["table"], chunk)] = item["reason"]
            elif int(item["start"]) < table.rows:  # (else: not committed)
                table.damaged.append(Damage(item["table"], int(item["start"]),
                                            min(int(item["stop"]), table.rows), item["reason"]))

    def _save_quarantine(self) -> None:
        items: list[dict[str, Any]] = [{"table": t, "chunk": c, "reason": r}
                                       for (t, c), r in self.quarantined.items()]
        items += [{"table": d.table, "start": d.start, "stop": d.stop, "reason": d.reason}
                  for d in self.lost]
        write_file_atomic(self.path / QUARANTINE_FILE, json.dumps(items).encode(),
                          fsync=self.fsync)

    def quarantine(self, table: str, chunk: int, reason: str) -> None:
        """Exclude one chunk's rows from sampling, log why, and remember it in quarantine.json."""
        chunk = int(chunk)
        if (table, chunk) in self.quarantined:
            return
        log.error("buffer %s: quarantined %s chunk %d: %s", self.path, table, chunk, reason)
        self.quarantined[(table, chunk)] = reason
        if not self.readonly:
            self._save_quarantine()

    def damage(self) -> list[Damage]:
        """Every committed row range lost so far, damaged chunks and WAL segments alike."""
        chunks = [Damage(t, c * self.tables[t].chunk,
                         min((c + 1) * self.tables[t].chunk, self.tables[t].rows), r)
                  for (t, c), r in self.quarantined.items()]
        return sorted(chunks + self.lost, key=lambda d: (d.table, d.start))

    def quarantined_rows(self) -> np.ndarray:
        """A bool mask over committed step rows: True where the row's data or metadata is lost."""
        mask = np.zeros(self.steps, bool)
        for d in self.damage():
            if d.table in ("steps", "step_info"):
                mask[d.start: d.stop] = True
        return mask

    # -- writing ---------------------------------------------------------------------------------
    def stage(self, table: str, columns: Mapping[str, np.ndarray | Sequence[np.ndarray]]
              ) -> None:
        if self.readonly:
            raise StorageError(f"{self.path}: opened read-only (prior data); it cannot be written")
        self.tables[table].stage(columns)

    def commit(self, meta: dict[str, Any] | None, robots: list[str], tasks: list[str],
               next_episode: int, open_tails: dict[int, Observation] | None = None
               ) -> dict[str, dict[str, np.ndarray]]:
        """Write staged rows and `open_tails`, fsync them all at once with the new record, then
        atomically replace the commit record (with `meta` in it); the rows each table gained."""
        if self.readonly:
            raise StorageError(f"{self.path}: opened read-only (prior data); it cannot be written")
        commit_no = self.commit_no + 1
        new_meta = self.meta if meta is None else dict(meta)
        json.dumps(new_meta)  # refuse non-JSON meta before anything is written
        checksum_bytes = self.checksums.committed_bytes
        try:
            writes = {name: table.write(commit_no) for name, table in self.tables.items()}
            open_files, obsolete, unsynced = self.open_tails.write(commit_no, open_tails or {})
            unsynced += [p for w in writes.values() for p in w.unsynced] + self.checksums.flush()
            record = {"schema_version": self.header.version, "commit": commit_no,
                      "meta": new_meta, "robots": robots, "tasks": tasks,
                      "next_episode": next_episode,
                      "checksum_bytes": self.checksums.committed_bytes,
                      "tables": {name: w.entry for name, w in writes.items()},
                      "open_tails": [f.to_json() for f in open_files]}
            self._write_record(record, unsynced)
        except BaseException:
            self.checksums.rollback(checksum_bytes)  # staged rows stay staged for a retry
            raise
        for name, table in self.tables.items():
            table.apply(writes[name].state)
        self.open_tails.files = open_files
        self.meta = new_meta
        if self.fsync:
            fsync_path(self.path)
        self.commit_no, self.robots, self.tasks = commit_no, list(robots), list(tasks)
        self.next_episode = next_episode
        now, kept = time.monotonic(), []
        for since, files in self._deferred:  # commit.prev.json no longer lists any of them
            if now - since < OBSOLETE_GRACE_S:
                kept.append((since, files))
                continue
            for f in files:
                f.unlink(missing_ok=True)
        self._deferred = [*kept, (now, obsolete + [p for w in writes.values() for p in w.obsolete])]
        return {name: w.new for name, w in writes.items()}

    # -- reading ---------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return self.tables["steps"].rows

    @property
    def episodes(self) -> int:
        return self.tables["episodes"].rows

    def _read_table(self, name: str) -> dict[str, np.ndarray]:
        """Every committed row of a small table; damaged chunks are quarantined, their rows
        come back as lost-row filler (see LOST_ROW_MARKS)."""
        return self.tables[name].read_columns(lambda c, why: self.quarantine(name, c, why))

    def read_step_info(self) -> dict[str, np.ndarray]:
        """All per-step metadata, row-aligned; lost rows have episode_id -1 and are quarantined."""
        return self._read_table("step_info")

    def read_episodes(self) -> dict[str, np.ndarray]:
        """Per-episode columns of the intact episodes, in the order they ended."""
        cols = self._read_table("episodes")
        keep = cols["episode_id"] >= 0
        cols = {k: v[keep] for k, v in cols.items()}
        cols["start"] = cols["first_row"]
        return cols

    def read_tails(self) -> dict[str, np.ndarray]:
        """The intact tail observations and the step rows they belong to."""
        cols = self._read_table("tails")
        keep = cols["row"] >= 0
        return {k: v[keep] for k, v in cols.items()}

    def read_chunk(self, chunk: int, columns: Sequence[str] | None = None
                   ) -> dict[str, np.ndarray]:
        """Observations and actions (or only `columns`, "obs/<key>" or "action") of one `steps`
        chunk, checksum-verified."""
        table = self.tables["steps"]
        return table.read_chunk(chunk, list(table.specs if columns is None else columns))

    def read_rows(self, rows: np.ndarray, columns: Sequence[str] | None = None
                  ) -> dict[str, np.ndarray]:
        """Observations and actions (or only `columns`) of arbitrary rows."""
        size, specs = self.tables["steps"].chunk, self.tables["steps"].specs
        out = {k: np.zeros((len(rows), *specs[k].shape), specs[k].dtype)
               for k in (specs if columns is None else columns)}
        for chunk in np.unique(rows // size):
            sel = np.flatnonzero(rows // size == chunk)
            data = self.read_chunk(int(chunk), list(out))
            for k in out:
                out[k][sel] = data[k][rows[sel] - chunk * size]
        return out

    def read_steps(self) -> dict[str, np.ndarray]:
        """Every committed step column, heavy ones included: O(buffer), for tools and tests."""
        steps = self.read_rows(np.arange(self.steps))
        steps.update(self.read_step_info())
        return steps

    def verify(self) -> list[str]:
        """Read and check every committed chunk (quarantining damaged ones) and the values of
        the metadata; one line per problem found, damage found earlier included."""
        problems = [p for p in (self.fallback, self.checksums.damage) if p is not None]
        for name, table in self.tables.items():
            for c in range(table.sealed // table.chunk):
                try:
                    table.read_chunk(c, list(table.specs))
                except CorruptDataError as exc:
                    self.quarantine(name, c, str(exc))
        problems += [f"lost {d.table} rows {d.start}-{d.stop - 1}: {d.reason}"
                     for d in self.damage()]
        problems += self.open_tails.read()[1]
        lost = self.quarantined_rows()
        info = self.read_step_info()
        problems += value_problems(info, ~lost, len(self.robots), len(self.tasks))
        return problems

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    @property
    def chunk_rows(self) -> int:
        return self.tables["steps"].chunk
