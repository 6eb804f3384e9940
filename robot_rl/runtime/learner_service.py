"""The session's learner in a process of its own: trains on what the writer commits, publishes a
weight version every `runtime.sync_every` updates, checkpoints the run.

It reads the buffer through a read-only view that follows the writer (`ReplayBuffer.refresh`), so
no robot waits for it. Once warm-up data is stored it trains as fast as its process goes: it
never waits for robots, and spends the time they take to act on more updates of what is stored,
unless `learner.max_updates_per_step` caps its updates per step stored since it started. An
unpaced sim robot waits for it in turn when the data gets `runtime.max_lead` steps ahead of
`learner.updates_per_step`, so a fast simulator does not outrun the learning it feeds. Runs
without Ray; `runtime.ray` hosts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
from omegaconf import DictConfig

from buffer import NothingToSampleError, ReplayBuffer
from robot_rl.core import ArraySpec, Batch, DictSpec
from robot_rl.core.priority import background_priority
from robot_rl.runtime.build import (
    build_algorithm,
    build_buffer,
    build_replay,
    demo_fraction,
    demo_side_path,
)
from robot_rl.runtime.checkpoint import load_latest, save_checkpoint
from robot_rl.runtime.env_worker import SessionStart, WeightUpdate
from robot_rl.runtime.learner import Learner
from robot_rl.runtime.run_dir import RunDir

log = logging.getLogger(__name__)
REFRESH_S = 0.2  # how often the learner takes in new commits while it trains
WAIT_S = 0.02  # how long the learner waits for data before it looks again


class LearnerService:
    """One algorithm, its batches from the run's buffer (and demo side), its versions and
    checkpoints; `run` trains until `stop`, `train(n)` runs n updates (the sync mode)."""

    def __init__(self, cfg: DictConfig, run: RunDir, obs_spec: DictSpec,
                 action_spec: ArraySpec) -> None:
        import torch

        torch.set_num_threads(int(cfg.learner.threads))
        self.cfg, self.run_dir = cfg, run
        self.algo = build_algorithm(cfg, obs_spec, action_spec)
        self.rng = np.random.default_rng(cfg.seed)
        state = load_latest(run.checkpoints)
        updates = 0
        if state is not None:
            self.algo.load_state_dict(state["algorithm"])
            self.rng.bit_generator.state = state["numpy_rng"]
            updates = int(state["counters"]["updates"])
        gamma = self.algo.config.gamma
        keys = self.algo.policy.obs_keys  # camera images its policy does not read stay on disk
        self.buffer = build_buffer(cfg, run.buffer, obs_spec, action_spec, gamma, readonly=True,
                                   obs_keys=keys)
        # a learner restarted after a crash goes on from its checkpoint's model, but its versions
        # never go back below one a robot already acted with
        acted = self.buffer.index.col("policy_version")
        updates = max(updates, int(acted.max()) if len(acted) else 0)
        self.algo.policy.version = updates
        fraction = demo_fraction(self.algo)
        self.demos = (ReplayBuffer(demo_side_path(cfg, run), readonly=True, obs_keys=keys,
                                   n_step=cfg.buffer.n_step, gamma=gamma)
                      if fraction > 0 else None)
        self.replay = build_replay(cfg, self.buffer, self.demos, gamma, fraction)
        self.learner = Learner(self.algo, self._batches(), updates)
        self.start = SessionStart(len(self.buffer), updates)
        self.metrics: dict[str, float] = {}
        # an update, a refresh, a checkpoint and a publish never interleave (the checkpoint, on
        # another thread, refreshes too)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._times: deque[float] = deque(maxlen=200)
        self._refreshed = 0.0
        self.latest = self._publish()

    def _batches(self) -> Iterator[Batch]:
        """A batch per next(); one that raises (nothing to sample yet) leaves it usable, where a
        generator that raised would be spent."""
        size = int(self.cfg.learner.batch_size)
        return iter(lambda: self.replay.sample(size, self.rng), None)

    def _publish(self) -> WeightUpdate:
        self.latest = WeightUpdate(self.learner.version, self.algo.policy.get_weights(),
                                   time.time(), self.learner.updates)
        return self.latest

    def _refresh(self) -> int:
        """Take in the writer's new commits; the rows stored now."""
        with self._lock:
            self.buffer.refresh()
            if self.demos is not None:
                self.demos.refresh()
            self._refreshed = time.monotonic()
            return len(self.buffer)

    # -- training ----------------------------------------------------------------------------------
    def _update(self) -> None:
        with self._lock:
            self.metrics = self.learner.update(1)
            self._times.append(time.monotonic())
            if self.learner.updates % int(self.cfg.runtime.sync_every) == 0:
                self._publish()

    def train(self, n: int) -> int:
        """`n` updates on everything committed so far, then a new version; the update count."""
        if self._refresh() >= int(self.cfg.learner.warmup_steps):
            for _ in range(n):
                self._update()
        with self._lock:
            self._publish()
        return self.learner.updates

    def _due(self, stored: int) -> bool:
        """Whether the data stored allows one more update: warm-up is stored and, under
        `learner.max_updates_per_step`, the updates since warm-up (or since this learner started)
        stay within it."""
        learner, most = self.cfg.learner, self.cfg.learner.max_updates_per_step
        if stored < int(learner.warmup_steps):
            return False
        return most is None or self.start.ahead(
            stored, self.learner.updates, float(most), int(learner.warmup_steps)) * most >= 1.0

    def run(self) -> int:
        """Train as fast as this process goes until `stop`, while the data stored allows, on
        this thread at `learner.nice` below the robots' CPU priority."""
        background_priority(int(self.cfg.learner.nice))
        stored = self._refresh()
        while not self._stop.is_set():
            if time.monotonic() - self._refreshed >= REFRESH_S:
                stored = self._refresh()
            if not self._due(stored):
                self._stop.wait(WAIT_S)
                stored = self._refresh()
                continue
            try:
                self._update()
            except NothingToSampleError as exc:  # committed rows not sampleable yet: wait
                log.warning("learner waits for data: %s", exc)
                self._stop.wait(REFRESH_S)
                stored = self._refresh()
        return self.learner.updates

    def stop(self) -> None:
        self._stop.set()

    def continue_from(self, start: SessionStart, updates: int) -> int:
        """Count the update-to-data ratio from the session's `start` (not from where this
        learner started: edges may have streamed meanwhile), and go on above `updates`, what the
        session had seen: a learner restarted after a crash counts nothing backwards, and no
        burst of updates makes up those lost since its checkpoint."""
        with self._lock:
            self.start = start
            if updates > self.learner.updates:
                self.learner.updates = updates
                self.algo.policy.version = updates
                self._publish()
        return self.learner.updates

    # -- what others ask ---------------------------------------------------------------------------
    def poll_weights(self, have: int) -> WeightUpdate | None:
        """The latest version if it is newer than `have`, else None (never waits)."""
        latest = self.latest
        return latest if latest.version > have else None

    def updates(self) -> int:
        return self.learner.updates

    def progress(self) -> dict[str, Any]:
        """Updates, version, updates/s over the last ~200 updates, the last update's metrics."""
        times = list(self._times)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        if times and time.monotonic() - times[-1] > 2.0:
            rate = 0.0  # not training now (warm-up, waiting for data, or between sync rounds)
        return {"updates": self.learner.updates, "version": self.learner.version,
                "published": self.latest.version, "published_at": self.latest.published_at,
                "updates_per_s": rate, "metrics": dict(self.metrics)}

    def checkpoint(self, session: dict[str, Any]) -> int:
        """Model, optimizers, temperature, RNG, counters and the buffer's commit point, atomically,
        with the session's own counters (`elapsed_s`, per-robot `safety`); the env steps it was
        taken at."""
        with self._lock:
            stored = self._refresh()
            state = {
                "algorithm": self.algo.state_dict(),
                "numpy_rng": self.rng.bit_generator.state,
                "counters": {"env_steps": stored, "episodes": self.buffer.num_episodes,
                             "updates": self.learner.updates,
                             "policy_version": self.learner.version,
                             "elapsed_s": float(session["elapsed_s"])},
                "buffer_commit": {"steps": stored, "episodes": self.buffer.num_episodes},
                "safety": session["safety"],
            }
            save_checkpoint(self.run_dir.checkpoints, stored, state,
                            keep=int(self.cfg.run.keep_checkpoints))
        return stored

    def close(self) -> None:
        self.stop()
        with self._lock:
            self.replay.close()
