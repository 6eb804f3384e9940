"""ReplayBuffer = storage x sampler x writer: durable on commit, sampled from a RAM cache."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from buffer.cache import CacheConfig, ChunkCache
from buffer.samplers import Provenance, Sampler, SampleView, UniformSampler
from buffer.schema import CHUNK_TARGET_BYTES
from buffer.step_index import StepIndex
from buffer.writer import EpisodeWriter, Writer, recover_open_episodes
from buffer.zarr_storage import ZarrStorage
from robot_rl.core import (
    ArraySpec,
    Batch,
    ConfigError,
    DictSpec,
    Episode,
    StorageError,
    Transition,
)

log = logging.getLogger(__name__)


class NothingToSampleError(StorageError):
    """No committed row can be sampled yet: none is resident in the cache with a known next
    observation (a reader right after a writer's first commits, a tiny cache). Try again."""


class ReplayBuffer:
    """A run's transitions: `append`/`end_episode`/`commit` to write, `sample` to learn from.

    Open with `readonly=True` (or `ReplayBuffer.open_prior`) to reuse an earlier run's buffer as
    prior data without copying it, or to follow a buffer that a live writer elsewhere (another
    process) keeps committing to: `refresh` moves the reader to the writer's latest commit.
    A reader may name the `obs_keys` it samples (a learner: those its policy reads); the other
    fields, camera images say, are then never read from disk nor held in RAM.
    Batches come only from committed rows resident in the cache.
    """

    def __init__(self, path: Path, obs_spec: DictSpec | None = None,
                 action_spec: ArraySpec | None = None, *, sampler: Sampler | None = None,
                 cache: CacheConfig | None = None, filter: Provenance | None = None,
                 readonly: bool = False, task: str = "default", n_step: int = 1,
                 gamma: float = 0.99, fsync: bool = True,
                 chunk_bytes: int = CHUNK_TARGET_BYTES,
                 obs_keys: Sequence[str] | None = None) -> None:
        self.storage = ZarrStorage(path, obs_spec, action_spec, readonly=readonly, fsync=fsync,
                                   chunk_bytes=chunk_bytes)
        try:
            self.obs_keys = self._chosen_keys(obs_keys, readonly)
            self._open(sampler, cache, filter, readonly, task, n_step, gamma)
        except BaseException:
            self.storage.close()
            raise

    def _chosen_keys(self, obs_keys: Sequence[str] | None, readonly: bool) -> list[str]:
        stored = list(self.storage.obs_spec)
        if obs_keys is None:
            return stored
        if not readonly:
            raise ConfigError(f"{self.storage.path}: only a read-only buffer samples a subset of "
                              "the observation (obs_keys); the writer keeps every field")
        unknown = sorted(set(obs_keys) - set(stored))
        if unknown:
            raise ConfigError(f"{self.storage.path}: obs_keys {unknown} are not in the stored "
                              f"observation, which has {stored}")
        return [k for k in stored if k in obs_keys]

    def _open(self, sampler: Sampler | None, cache: CacheConfig | None,
              filter: Provenance | None, readonly: bool, task: str, n_step: int,
              gamma: float) -> None:
        self.sampler = sampler or UniformSampler()
        self.filter = filter
        if n_step < 1:
            raise ConfigError(f"n_step must be >= 1 (1: one-step returns), got {n_step}")
        self.n_step, self.gamma = n_step, gamma
        self.index = StepIndex(DictSpec({k: self.storage.obs_spec[k] for k in self.obs_keys}))
        info, tails = self.storage.read_step_info(), self.storage.read_tails()
        self.index.extend(info, tails)
        self.index.quarantine_mask(self.storage.quarantined_rows())
        self._episodes = self.storage.read_episodes()
        # (a reader racing the writer may miss a file the writer just dropped: only the writer,
        # and verify, report a missing one)
        open_tails, problems = self.storage.open_tails.read()
        self.index.set_open_tails(open_tails)
        self.writer: Writer | None = None
        if not readonly:
            for problem in problems:
                log.error("buffer %s: %s", self.storage.path, problem)
            tail_rows = {int(r): i for i, r in enumerate(tails["row"])}
            pending = {r: {k: tails[f"obs/{k}"][i] for k in self.obs_keys}
                       for r, i in tail_rows.items()}
            recovered = recover_open_episodes(info, self._episodes["episode_id"],
                                              self.storage.robots, pending, open_tails)
            self.writer = EpisodeWriter(self.storage, task, recovered)
        self.cache = ChunkCache(self.storage, cache or CacheConfig(), self._on_corrupt_chunk,
                                lambda rows: self.index.next_row.data[rows],
                                [*(f"obs/{k}" for k in self.obs_keys), "action"])
        self.cache.start()
        self._candidates: tuple[tuple[int, int], np.ndarray] | None = None
        self._refreshing = threading.Lock()  # one refresh at a time: each commit taken in once
        self.last_rows = np.zeros(0, np.int64)  # rows of the last batch (coverage measurements)

    @classmethod
    def open_prior(cls, path: Path, **kwargs: Any) -> ReplayBuffer:
        """An earlier run's (or a demo) buffer, read-only, specs taken from the store."""
        return cls(path, readonly=True, **kwargs)

    def close(self) -> None:
        """Stop the background loader and release the writer lock (committed data needs no
        flushing)."""
        self.cache.close()
        self.storage.close()

    def __enter__(self) -> ReplayBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.storage.steps

    @property
    def num_episodes(self) -> int:
        return self.storage.episodes

    @property
    def commit_meta(self) -> dict[str, Any]:
        """The metadata stored by the last commit."""
        return dict(self.storage.meta)

    @property
    def open_episodes(self) -> dict[str, int]:
        """Robot id -> episode id of each episode appended to but not ended."""
        return {} if self.writer is None else {r: e.episode_id for r, e in self.writer.open.items()}

    # -- writing ---------------------------------------------------------------------------------
    def _require_writer(self) -> EpisodeWriter:
        if self.writer is None:
            raise StorageError(f"{self.storage.path}: opened read-only (prior data); "
                               "it cannot be written")
        return self.writer

    def append(self, transitions: Sequence[Transition], task: str | None = None) -> None:
        """Stage transitions (any robots, interleaved); nothing is durable before `commit`."""
        self._require_writer().append(transitions, task)

    def end_episode(self, success: bool, robot_id: str | None = None) -> None:
        """Close the open episode of `robot_id` (may be omitted while only one is open)."""
        self._require_writer().end_episode(success, robot_id)

    def commit(self, meta: dict[str, Any] | None = None) -> None:
        """Make everything staged durable in one atomic step, with `meta` in the same record."""
        writer = self._require_writer()
        start = len(self)
        open_tails = writer.open_tails()
        new = self.storage.commit(meta, writer.robots, writer.tasks, writer.next_episode,
                                  open_tails)
        steps, episodes = new["steps"], new["episodes"]
        self.index.extend(new["step_info"], new["tails"])
        self.index.set_open_tails(open_tails)
        if len(steps["action"]):
            self.cache.add_rows(start, steps)
        if len(episodes["episode_id"]):
            for k, v in episodes.items():
                self._episodes[k] = np.concatenate([self._episodes[k], v])
            self._episodes["start"] = self._episodes["first_row"]

    def add_episode(self, episode: Episode) -> None:
        """Append a whole episode, end it and commit."""
        strays = {t.robot_id for t in episode.transitions} - {episode.robot_id}
        if strays:
            raise StorageError(f"episode {episode.episode_id} of robot {episode.robot_id!r} holds "
                               f"transitions of {sorted(strays)}; set Transition.robot_id to the "
                               "episode's robot")
        self.append(episode.transitions, task=episode.task)
        self.end_episode(episode.success, robot_id=episode.robot_id)
        self.commit()

    # -- following a live writer -----------------------------------------------------------------
    def refresh(self) -> bool:
        """A reader: take in everything the writer committed since this buffer last looked; True
        if there was something. Only whole commits are seen (the writer replaces its commit record
        atomically), and rows read before stay as they were. Refreshes from several threads take
        turns; a thread that samples while another refreshes must hold a lock of its own around
        both (the learner's)."""
        if self.writer is not None:
            raise StorageError(f"{self.storage.path}: this buffer is the writer; only a read-only "
                               "buffer (ReplayBuffer.open_prior) follows a writer")
        with self._refreshing:
            return self._take_in_new_commits()

    def _take_in_new_commits(self) -> bool:
        old = self.storage
        if old.latest_commit_no() == old.commit_no:  # the record alone: looking costs ~nothing
            return False
        latest = old.follow()
        if latest.commit_no == old.commit_no:
            return False
        if latest.commit_no < old.commit_no or latest.steps < old.steps:
            raise StorageError(f"{old.path}: commit {latest.commit_no} ({latest.steps} rows) is "
                               f"behind commit {old.commit_no} ({old.steps} rows) read before: "
                               "another buffer was put in its place; open it anew")
        info = _rows_since(latest, "step_info", old.steps)
        tails = _rows_since(latest, "tails", old.tables["tails"].rows)
        episodes = _rows_since(latest, "episodes", old.episodes)
        with self.cache.lock:
            self.storage = self.cache.storage = latest
        self.index.extend(info, tails)
        self.index.set_open_tails(latest.open_tails.read()[0])
        self.index.quarantine_mask(latest.quarantined_rows())
        for k, v in episodes.items():
            self._episodes[k] = np.concatenate([self._episodes[k], v])
        self._episodes["start"] = self._episodes["first_row"]
        if latest.steps > old.steps:
            self.cache.add_rows(old.steps, latest.read_rows(np.arange(old.steps, latest.steps),
                                                            list(self.cache.specs)))
        return True

    # -- reading ---------------------------------------------------------------------------------
    def _on_corrupt_chunk(self, chunk: int) -> None:
        rpc = self.cache.rows_per_chunk
        self.index.quarantine(chunk * rpc, (chunk + 1) * rpc)

    def _has_next_resident(self, rows: np.ndarray) -> np.ndarray:
        """Sampleable rows whose next observation is a tail or a resident row."""
        has_tail = self.index.has_tail(rows) | self.cache.has_boundary(rows)
        nxt = self.index.next_row.data[rows]
        good_next = self.cache.is_resident(nxt) & ~self.index.quarantined.data[np.maximum(nxt, 0)]
        return self.index.sampleable(rows) & (has_tail | good_next)

    def _resident_candidates(self) -> np.ndarray:
        """Under the cache lock: sampleable committed rows whose data (and next obs) is in RAM."""
        key = (self.cache.version, self.index.version)
        if self._candidates is not None and self._candidates[0] == key:
            return self._candidates[1]
        rpc, n = self.cache.rows_per_chunk, len(self.index)
        chunks = self.cache.resident_chunks()
        rows = (chunks[:, None] * rpc + np.arange(rpc)[None, :]).ravel()
        rows = rows[rows < n]
        rows = rows[self.cache.is_resident(rows) & self._has_next_resident(rows)]
        if self.filter is not None:
            rows = rows[self.filter.mask(self.index, rows, self.storage.robots,
                                         self.storage.tasks)]
        self._candidates = (key, rows)
        return rows

    def sample_rows(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Row numbers of a batch drawn by the sampler (for tools and coverage measurements)."""
        return self._sample(batch_size, rng, gather=False)[0]

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A batch (with next_obs, n-step if configured) from committed, cache-resident rows."""
        rows, batch = self._sample(batch_size, rng, gather=True)
        self.cache.on_batch()
        self.last_rows = rows
        assert batch is not None
        return batch

    def _sample(self, batch_size: int, rng: np.random.Generator,
                gather: bool) -> tuple[np.ndarray, Batch | None]:
        for _ in range(self.cache.n_chunks() + 1):  # each pass may rotate one chunk in
            with self.cache.lock:
                view = SampleView(self._resident_candidates(), self.index, len(self.index))
                if len(view.rows):
                    rows = self.sampler.draw(view, batch_size, rng)
                    return rows, self._gather(rows) if gather else None
                looked_at = self.cache.version
            # nothing resident qualifies: load more now, unless the background loader has
            # loaded everything since we looked (then look again)
            if not self.cache.rotate_once() and self.cache.version == looked_at:
                break
        raise NothingToSampleError(
            f"{self.storage.path}: nothing to sample ({len(self)} committed rows, none resident "
            "with a known next observation and passing the filter)")

    def _next_obs(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The next observation of each row: its successor's in the pool, else its tail, else
        the one its chunk brought along (see `_has_next_resident`)."""
        nxt = self.index.next_row.data[rows]
        from_pool = self.cache.is_resident(nxt) & ~self.index.quarantined.data[np.maximum(nxt, 0)]
        pos = self.cache.positions(np.where(from_pool, nxt, 0))
        out = {k: self.cache.pool[f"obs/{k}"][pos] for k in self.obs_keys}
        rest = rows[~from_pool]
        if len(rest):
            tailed = self.index.has_tail(rest)
            tails = self.index.tails(self.obs_keys, rest[tailed])
            bounds = self.cache.boundary_obs([f"obs/{k}" for k in self.obs_keys], rest[~tailed])
            for k, values in out.items():
                found = np.empty((len(rest), *values.shape[1:]), values.dtype)
                found[tailed] = tails[k]
                found[~tailed] = bounds[f"obs/{k}"]
                values[~from_pool] = found
        return out

    def _gather(self, rows: np.ndarray) -> Batch:
        pos = self.cache.positions(rows)
        reward = self.index.col("reward")[rows].astype(np.float32)
        terminated = self.index.col("terminated")[rows].copy()
        last = rows.copy()
        discount = np.ones(len(rows), np.float32)
        for _ in range(self.n_step - 1):  # extend along the episode while data is resident
            nxt = self.index.next_row.data[last]
            safe = np.where(nxt >= 0, nxt, 0)
            going = ~terminated & (nxt >= 0) & self._has_next_resident(safe)
            discount[going] *= self.gamma
            reward[going] += discount[going] * self.index.col("reward")[nxt[going]]
            terminated[going] = self.index.col("terminated")[nxt[going]]
            last[going] = nxt[going]
        return Batch(
            obs={k: self.cache.pool[f"obs/{k}"][pos] for k in self.obs_keys},
            action=self.cache.pool["action"][pos],
            reward=reward,
            next_obs=self._next_obs(last),
            terminated=terminated.astype(np.float32),
            intervened=self.index.col("intervened")[rows],
            source=self.index.col("source")[rows],
            policy_version=self.index.col("policy_version")[rows],
            discount=discount if self.n_step > 1 else None,
        )

    def episode_table(self) -> dict[str, np.ndarray]:
        """Per-episode columns (see schema.EPISODE_COLUMNS), plus task and robot names."""
        table = {k: v.copy() for k, v in self._episodes.items()}
        table["task_name"] = np.array([self.storage.tasks[i] for i in table["task"]], dtype=str)
        table["robot_name"] = np.array([self.storage.robots[i] for i in table["robot_id"]],
                                       dtype=str)
        return table


def _rows_since(storage: ZarrStorage, name: str, start: int) -> dict[str, np.ndarray]:
    """Rows `start:` of one of `storage`'s tables, read chunk by chunk (only the new ones)."""
    table = storage.tables[name]
    columns = list(table.specs)
    parts = [table.read_chunk(c, columns)
             for c in range(start // table.chunk, -(-table.rows // table.chunk))]
    first = (start // table.chunk) * table.chunk
    return {k: (np.concatenate([p[k] for p in parts]) if parts else
                np.zeros((0, *table.specs[k].shape), table.specs[k].dtype))[start - first:
                                                                             table.rows - first]
            for k in columns}
