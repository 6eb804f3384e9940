"""The session's parts as Ray actors: the buffer's writer (with the gateway for edge robots), the
learner, one env worker per robot.

Each wraps a plain class of `robot_rl.runtime` (which runs without Ray) and logs to the run's
log folder; a config travels as a plain dict, since Ray pickles what it sends between processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ray
from omegaconf import DictConfig, OmegaConf

from hal import Teleop
from hal.session_leases import LeaseView
from robot_rl.core import ArraySpec, DictSpec, Episode
from robot_rl.runtime.env_worker import EnvWorker, SessionPorts, SessionStart, WeightUpdate
from robot_rl.runtime.gateway import SessionGateway
from robot_rl.runtime.learner_service import LearnerService
from robot_rl.runtime.ray.cluster import log_to
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session_writer import EpisodeSummary, SessionWriter

log = logging.getLogger(__name__)
POLL_S = 0.05  # an env worker asks for new weights at most this often (between two steps)


def _setup(cfg: dict[str, Any], name: str) -> DictConfig:
    config = OmegaConf.create(cfg)
    log_to(Path(config.run.dir) / "logs" / f"{name}.log")
    logging.getLogger().setLevel(logging.INFO)
    return config


class _Named:
    """A part reached by its Ray name, looked up when first used (it may start after the caller
    and is the same part after a restart)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handle: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._handle is None:
            self._handle = ray.get_actor(self.name)  # ValueError until it exists
        return getattr(self._handle, method)


class WeightPoller:
    """Asks the learner for a newer version without ever waiting: a request in flight is looked
    at, a new one sent at most every `POLL_S`. A learner that is not there yet, or restarting,
    gives no new version: the robot acts on what it holds."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self._pending: Any = None
        self._asked = 0.0

    def __call__(self, held: int) -> WeightUpdate | None:
        try:
            if self._pending is None:
                if time.monotonic() - self._asked < POLL_S:
                    return None
                self._asked = time.monotonic()
                self._pending = self.learner.poll_weights.remote(held)
            ready, _ = ray.wait([self._pending], timeout=0)
            if not ready:
                return None
            pending, self._pending = self._pending, None
            update = ray.get(pending)
        except (ValueError, ray.exceptions.RayError) as exc:  # not started, or died mid-call
            self._pending = None
            log.info("no new weights from the learner now (%s)", type(exc).__name__)
            return None
        return update if update is not None and update.version > held else None


def worker_ports(writer: Any, learner: Any) -> SessionPorts:
    """An env worker's ports as remote calls to the session's writer and learner actors."""
    return SessionPorts(
        next_episode_id=lambda: ray.get(writer.next_episode_id.remote()),
        last_seq=lambda stream: ray.get(writer.last_seq.remote(stream)),
        commit_episode=lambda s, q, e: ray.get(writer.commit_episode.remote(s, q, e)),
        poll_weights=WeightPoller(learner),
        learner_updates=lambda: ray.get(learner.updates.remote()))


RESTARTED = dict(max_restarts=-1, max_task_retries=-1)
"""Ray restarts a part whose process dies (re-running its constructor) and retries the calls it
was running; every part is written to start again from what the run directory holds."""


def actor_name(run_dir: str, part: str) -> str:
    """The Ray name of a session's part: unique per run directory on a shared cluster."""
    return f"robot_rl-{part}-{hashlib.sha1(run_dir.encode()).hexdigest()[:12]}"


class Part:
    """What every part answers: who it is now (a new pid after a restart)."""

    def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname()}


@ray.remote(num_cpus=0, max_concurrency=8, **RESTARTED)
class WriterActor(Part):
    """The one writer of the run's buffer (and demo side), and the gateway edge robots commit
    through: in one process, so an edge's frames reach the buffer with no further hop."""

    def __init__(self, cfg: dict[str, Any], obs_spec: DictSpec, action_spec: ArraySpec,
                 demo_side: str | None, gamma: float, session: str) -> None:
        config = _setup(cfg, "writer")
        self.cfg, self.obs_spec, self.action_spec = config, obs_spec, action_spec
        from buffer import ReplayBuffer

        run = RunDir(Path(config.run.dir))
        demos = (ReplayBuffer(Path(demo_side), obs_spec, action_spec, n_step=config.buffer.n_step,
                              gamma=gamma) if demo_side is not None else None)
        self.writer = SessionWriter(run, obs_spec, action_spec, str(config.task.name), demos)
        self.opened_with = self.writer.stored()[0]  # before any edge can stream
        self.gateway: SessionGateway | None = None
        if config.gateway.port is not None:
            self._serve_edges(run, session)

    def _serve_edges(self, run: RunDir, session: str) -> None:
        """Serve edge robots on `gateway.port`; a writer restarted in the same session keeps the
        port it had (`gateway.port=0` picks one the first time), so edges find it again."""
        chosen = run.root / "logs" / "gateway.json"
        cfg = self.cfg.copy()
        if int(cfg.gateway.port) == 0 and chosen.exists():
            before = json.loads(chosen.read_text())
            if before.get("session") == session:
                cfg.gateway.port = int(before["port"])
        learner = _Named(actor_name(str(run.root), "learner"))
        self.gateway = SessionGateway(cfg, self.writer, self.obs_spec, self.action_spec,
                                      WeightPoller(learner))
        chosen.write_text(json.dumps({"session": session, "port": self.gateway.port}))

    def edge_port(self) -> int | None:
        return None if self.gateway is None else self.gateway.port

    def stored_when_opened(self) -> int:
        """Steps the buffer held when this writer opened it, before its gateway served edges."""
        return self.opened_with

    def edge_status(self) -> dict[str, Any]:
        """The gateway's counters, the version remote-policy edges are answered with, and each
        local-policy edge's weights (the version it acts with, its lag and sync latency)."""
        if self.gateway is None:
            return {}
        return {"version": self.gateway.version, "sync_latency_s": self.gateway.sync_latency_s,
                "stats": self.gateway.stats(), "weights": self.gateway.weight_stats()}

    def last_seq(self, stream_id: str) -> int:
        return self.writer.last_seq(stream_id)

    def next_episode_id(self) -> int:
        return self.writer.next_episode_id()

    def commit_episode(self, stream_id: str, first_seq: int, episode: Episode) -> int:
        return self.writer.commit_episode(stream_id, first_seq, episode)

    def stored(self) -> tuple[int, int]:
        return self.writer.stored()

    def episodes_since(self, index: int) -> list[EpisodeSummary]:
        return self.writer.episodes_since(index)

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        self.writer.close()


@ray.remote(num_cpus=0, max_concurrency=4, **RESTARTED)
class LearnerActor(Part):
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

    def continue_from(self, start: SessionStart, updates: int) -> int:
        return self.service.continue_from(start, updates)

    def poll_weights(self, have: int) -> WeightUpdate | None:
        return self.service.poll_weights(have)

    def updates(self) -> int:
        return self.service.updates()

    def progress(self) -> dict[str, Any]:
        return self.service.progress()

    def checkpoint(self, session: dict[str, Any]) -> int:
        return self.service.checkpoint(session)

    def close(self) -> None:
        self.service.close()


class WorkerHost:
    """An env worker with a stop flag, its robot touched by one thread only (a GL context, a
    driver's socket belong to the thread that made them): `run` acts until the budget, `stop`,
    or the e-stop, while `status` and `stop` answer from any thread."""

    def __init__(self, cfg: DictConfig, writer: Any, learner: Any, start: SessionStart,
                 gated: bool, first_robot: str, teleop: Teleop | None = None,
                 lease: LeaseView | None = None) -> None:
        self._stop = threading.Event()
        self._robot_thread = ThreadPoolExecutor(1, thread_name_prefix=f"robot-{cfg.robot.id}")
        self.worker = self._robot_thread.submit(
            EnvWorker, cfg, RunDir(Path(cfg.run.dir)), worker_ports(writer, learner), start,
            gated=gated, first_robot=first_robot, teleop=teleop, lease=lease).result()

    def submit_run(self, budget: int) -> Future[str]:
        return self._robot_thread.submit(self.worker.run, budget, self._stop.is_set)

    def run(self, budget: int) -> str:
        return self.submit_run(budget).result()

    def submit_episode(self) -> Future[tuple[int, float]]:
        """One episode (the sync mode); its length and seconds."""
        def episode() -> tuple[int, float]:
            started = time.monotonic()
            return self.worker.run_episode().length, time.monotonic() - started

        return self._robot_thread.submit(episode)

    def run_episode(self) -> tuple[int, float]:
        return self.submit_episode().result()

    def take_weights(self, update: WeightUpdate | None) -> int:
        """Apply `update` now (the sync mode's lockstep); the version held."""
        if update is not None:
            self._robot_thread.submit(self.worker.apply_weights, update).result()
        return self.worker.policy.version

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict[str, Any]:
        return self.worker.status()

    def close(self) -> None:
        self._stop.set()
        try:
            self._robot_thread.submit(self.worker.close).result()
        finally:
            self._robot_thread.shutdown(wait=True)


@ray.remote(num_cpus=0, max_concurrency=4, **RESTARTED)
class EnvWorkerActor(WorkerHost, Part):
    """One robot in its own process: `run` acts while `status` and `stop` answer."""

    def __init__(self, cfg: dict[str, Any], start: SessionStart, gated: bool, first_robot: str,
                 lease: LeaseView | None) -> None:
        config = _setup(cfg, f"env-{cfg['robot']['id']}")
        root = str(config.run.dir)  # the writer and learner by name: a restart finds them again
        super().__init__(config, _Named(actor_name(root, "writer")),
                         _Named(actor_name(root, "learner")), start, gated, first_robot,
                         lease=lease)
