"""The session's parts as Ray actors: the buffer's writer, the learner, one env worker a robot.

Each wraps a plain class of `robot_rl.runtime` (which runs without Ray) and logs to the run's
log folder; a config travels as a plain dict, since Ray pickles what it sends between processes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import ray
from omegaconf import OmegaConf

from robot_rl.core import ArraySpec, DictSpec, Episode
from robot_rl.runtime.env_worker import EnvWorker, SessionPorts, WeightUpdate
from robot_rl.runtime.learner_service import LearnerService
from robot_rl.runtime.ray.cluster import log_to
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session_writer import EpisodeSummary, SessionWriter

POLL_S = 0.05  # an env worker asks for new weights at most this often (between two steps)


def _setup(cfg: dict[str, Any], name: str) -> Any:
    config = OmegaConf.create(cfg)
    log_to(Path(config.run.dir) / "logs" / f"{name}.log")
    logging.getLogger().setLevel(logging.INFO)
    return config


@ray.remote(num_cpus=0)
class WriterActor:
    """The one writer of the run's buffer (and demo side); calls run one at a time."""

    def __init__(self, cfg: dict[str, Any], obs_spec: DictSpec, action_spec: ArraySpec,
                 gamma: float, with_demos: bool) -> None:
        config = _setup(cfg, "writer")
        run = RunDir(Path(config.run.dir))
        from buffer import ReplayBuffer

        demos = (ReplayBuffer(run.demos, obs_spec, action_spec, n_step=config.buffer.n_step,
                              gamma=gamma) if with_demos else None)
        self.writer = SessionWriter(run, obs_spec, action_spec, str(config.task.name), demos)

    def last_seq(self, stream_id: str) -> int:
        return self.writer.last_seq(stream_id)

    def commit(self, stream_id: str, first_seq: int, transitions: list[Any],
               episode_ends: list[tuple[int, bool]]) -> None:
        self.writer.commit(stream_id, first_seq, transitions, episode_ends)

    def next_episode_id(self) -> int:
        return self.writer.next_episode_id()

    def commit_episode(self, stream_id: str, first_seq: int, episode: Episode) -> int:
        return self.writer.commit_episode(stream_id, first_seq, episode)

    def stored(self) -> tuple[int, int]:
        return self.writer.stored()

    def episodes_since(self, index: int) -> list[EpisodeSummary]:
        return self.writer.episodes_since(index)

    def close(self) -> None:
        self.writer.close()


@ray.remote(num_cpus=0, max_concurrency=4)
class LearnerActor:
    """The learner: `run` trains until `stop`; the other calls answer while it does."""

    def __init__(self, cfg: dict[str, Any], obs_spec: DictSpec, action_spec: ArraySpec) -> None:
        config = _setup(cfg, "learner")
        self.service = LearnerService(config, RunDir(Path(config.run.dir)), obs_spec,
                                      action_spec)

    def run(self) -> int:
        return self.service.run()

    def train(self, n: int) -> int:
        return self.service.train(n)

    def stop(self) -> None:
        self.service.stop()

    def poll_weights(self, have: int) -> WeightUpdate | None:
        return self.service.poll_weights(have)

    def updates(self) -> int:
        return self.service.updates()

    def progress(self) -> dict[str, Any]:
        return self.service.progress()

    def checkpoint(self, safety: dict[str, int]) -> int:
        return self.service.checkpoint(safety)

    def close(self) -> None:
        self.service.close()


@ray.remote(num_cpus=0, max_concurrency=2)
class EnvWorkerActor:
    """One sim robot: `run` acts until the budget is stored or `stop`; `status` answers meanwhile."""

    def __init__(self, cfg: dict[str, Any], writer: Any, learner: Any, stored: int,
                 gated: bool) -> None:
        config = _setup(cfg, f"env-{cfg['robot']['id']}")
        self.learner, self.budget = learner, int(config.run.env_steps)
        self._pending: Any = None
        self._asked = 0.0
        self._stop = False
        ports = SessionPorts(
            next_episode_id=lambda: ray.get(writer.next_episode_id.remote()),
            last_seq=lambda stream: ray.get(writer.last_seq.remote(stream)),
            commit_episode=lambda s, q, e: ray.get(writer.commit_episode.remote(s, q, e)),
            poll_weights=self._poll, learner_updates=lambda: ray.get(learner.updates.remote()))
        self.worker = EnvWorker(config, ports, stored, gated=gated)

    def _poll(self) -> WeightUpdate | None:
        """Never waits: a request in flight is looked at, a new one sent at most every POLL_S."""
        if self._pending is None:
            if time.monotonic() - self._asked < POLL_S:
                return None
            self._asked = time.monotonic()
            self._pending = self.learner.poll_weights.remote(self.worker.policy.version)
        ready, _ = ray.wait([self._pending], timeout=0)
        if not ready:
            return None
        update, self._pending = ray.get(self._pending), None
        return update

    def run(self) -> int:
        while not self._stop and self.worker.stored < self.budget:
            self.worker.run_episode()
        return self.worker.stored

    def run_episode(self) -> tuple[int, float]:
        """One episode (the sync mode): its length and seconds."""
        started = time.monotonic()
        episode = self.worker.run_episode()
        return episode.length, time.monotonic() - started

    def take_weights(self) -> int:
        """The learner's latest version, now (the sync mode's lockstep); the version applied."""
        update = ray.get(self.learner.poll_weights.remote(self.worker.policy.version))
        if update is not None:
            self.worker.apply_weights(update)
        return self.worker.policy.version

    def stop(self) -> None:
        self._stop = True

    def status(self) -> dict[str, Any]:
        return {"version": self.worker.policy.version, "sync_latency_s": self.worker.sync_latency_s,
                "safety": self.worker.safety_events()}

    def close(self) -> None:
        self.worker.close()
