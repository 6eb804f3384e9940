"""One robot of a session in its own process: the actor's episodes committed to the session's
writer, new weights applied between two steps.

The worker reaches the writer and the learner only through `SessionPorts`, which the Ray layer
(`runtime.ray`) fills with remote calls, so this module runs (and is tested) without Ray. A robot
a person drives, or one paced at its control rate, never waits for the learner; an unpaced sim
robot waits between two episodes while it is `runtime.max_lead` steps ahead of the update-to-data
ratio, so a fast simulator does not outrun the learning it feeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from hal import Teleop, task_outcomes
from hal.health_monitor import HealthMonitor
from hal.leases import LeaseHandle
from robot_rl.core import DictSpec, Episode, HardwareError, Observation, SafetyError
from robot_rl.runtime.actor import Actor, ActorConfig, PolicySource, steps
from robot_rl.runtime.adapter import adapted
from robot_rl.runtime.build import (
    build_adapter,
    build_algorithm,
    build_reward,
    build_robot,
    build_teleop,
    require_labels_source,
)
from robot_rl.runtime.checkpoint import load_latest, safety_counts
from robot_rl.runtime.run_dir import RunDir

log = logging.getLogger(__name__)
GATE_S = 0.05  # how often a waiting sim robot looks at the learner's progress
HEALTH_POLL_S = 0.5  # how often a robot's health is checked


@dataclass(frozen=True)
class WeightUpdate:
    """A policy version as the learner published it."""

    version: int
    weights: dict[str, np.ndarray]
    published_at: float  # time.time() when the learner had it
    updates: int  # the learner's update count then


@dataclass(frozen=True)
class SessionStart:
    """Where this run of the session began: the update-to-data ratio counts from here, so a
    resumed run has no burst of updates to catch up."""

    stored: int  # steps in the buffer
    updates: int  # the learner's updates

    def ahead(self, stored: int, updates: int, ratio: float, warmup: int) -> float:
        """How many steps the data is ahead of the learner at `ratio` updates a step (negative:
        the learner is ahead of the data)."""
        base = max(self.stored, warmup)
        return (max(stored - base, 0) * ratio - (updates - self.updates)) / ratio


@dataclass
class SessionPorts:
    """What a worker calls: the writer (blocking, durable on return) and the learner (never
    blocking: `poll_weights(held)` answers None unless a version newer than `held` is ready)."""

    next_episode_id: Callable[[], int]
    last_seq: Callable[[str], int]
    commit_episode: Callable[[str, int, Episode], int]
    poll_weights: Callable[[int], WeightUpdate | None]
    learner_updates: Callable[[], int]


def worker_observer(cfg: DictConfig, raw_spec: DictSpec, run: RunDir
                    ) -> Callable[[Observation], Observation] | None:
    """Frozen camera features from the run's encoder (prepared by the session before any worker
    starts), or None without `algo.features.cameras`."""
    if not cfg.algo.features.cameras:
        return None
    from robot_rl.runtime.frozen_features import FeatureObserver  # torch: only for features

    observer = FeatureObserver(cfg.algo.features, raw_spec)
    weights = cfg.algo.features.weights
    observer.load(Path(weights) if weights else run.root / "encoder.npz")
    return observer


class EnvWorker:
    """A robot run for a session (`cfg` is the session's config with this robot's `robot`)."""

    def __init__(self, cfg: DictConfig, run: RunDir, ports: SessionPorts, start: SessionStart,
                 *, gated: bool = True, first_robot: str | None = None,
                 teleop: Teleop | None = None, lease: LeaseHandle | None = None) -> None:
        self.cfg, self.ports, self.start = cfg, ports, start
        self.arm, self.robot = build_robot(cfg)
        self.stream = str(cfg.robot.id)
        # the safety/* counts go on across a resume, and across a restart of this worker
        self.robot.events.update(safety_counts(load_latest(run.checkpoints), self.stream,
                                               first_robot or self.stream))
        raw_spec = self.arm.observation_spec
        observer = worker_observer(cfg, raw_spec, run)
        adapter = build_adapter(cfg, observer.spec if observer is not None  # type: ignore[attr-defined]
                                else raw_spec)
        self.policy = build_algorithm(cfg, adapter.spec, self.arm.action_spec).policy
        self.teleop = teleop or build_teleop(cfg, self.arm)  # given: the device a person drives
        reward = build_reward(cfg, raw_spec)  # rewards see the raw frames
        require_labels_source(cfg, reward, self.teleop)
        self.paced = bool(cfg.runtime.realtime) or bool(self.teleop and self.teleop.realtime)
        self.gated = gated and not self.paced
        self.stored = start.stored
        rng = np.random.default_rng([int(cfg.seed), *self.stream.encode()])
        self.source = PolicySource(self.policy, self.arm.action_spec, rng,
                                   exploring=lambda: self.stored < cfg.learner.warmup_steps)
        period = 1.0 / float(cfg.robot.control_hz) if self.paced else 0.0
        self.actor = Actor(self.robot, reward, ActorConfig(
            max_steps=int(cfg.task.max_steps), task_reward=cfg.task.reward, period=period),
            outcomes=task_outcomes(self.arm), teleop=self.teleop,
            observe=adapted(observer, adapter))
        self.seq = ports.last_seq(self.stream) + 1
        self.sync_latency_s: float | None = None
        self.learner_updates = start.updates
        self.lease = lease
        self.monitor = HealthMonitor(poll_s=HEALTH_POLL_S)
        self.monitor.watch(self.robot, lease)  # a failing robot is held, its lease faulted
        self.robot.connect()
        self.monitor.start()

    # -- weights -----------------------------------------------------------------------------------
    def apply_weights(self, update: WeightUpdate) -> None:
        """A new policy version, taken at a step boundary (between two actions)."""
        self.policy.set_weights(update.weights, update.version)
        self.sync_latency_s = max(time.time() - update.published_at, 0.0)
        self.learner_updates = max(self.learner_updates, update.updates)

    def take_weights(self) -> None:
        update = self.ports.poll_weights(self.policy.version)
        if update is not None:
            self.apply_weights(update)

    # -- the loop ----------------------------------------------------------------------------------
    def wait_for_learner(self, stopping: Callable[[], bool] = lambda: False) -> None:
        """Before an episode: an unpaced sim robot waits while the data it adds would be more
        than `runtime.max_lead` steps ahead of the learner's update-to-data ratio."""
        if not self.gated:
            return
        cfg = self.cfg
        ratio, lead = float(cfg.learner.updates_per_step), int(cfg.runtime.max_lead)
        while not stopping() and self.start.ahead(
                self.stored, self.learner_updates, ratio, cfg.learner.warmup_steps) > lead:
            time.sleep(GATE_S)
            self.take_weights()
            self.learner_updates = max(self.learner_updates, self.ports.learner_updates())

    def run_episode(self) -> Episode:
        """One episode, committed whole (durable) before this returns."""
        episode = Episode(self.ports.next_episode_id(), self.robot.robot_id, self.cfg.task.name)
        for transition in steps(self.actor.episode(self.source, episode.episode_id)):
            episode.transitions.append(transition)
            self.stored += 1
            self.take_weights()
        episode.success = self.actor.success
        self.stored = self.ports.commit_episode(self.stream, self.seq, episode)
        self.seq += episode.length
        return episode

    def run(self, budget: int, stopping: Callable[[], bool]) -> str:
        """Episodes until the buffer holds `budget` steps, `stopping()` says so, or the e-stop is
        pressed; why it ended: "budget", "stopped" or "estop". A robot the health monitor holds
        sits out until it is healthy again, then rejoins."""
        while self.stored < budget:
            if stopping():
                return "stopped"
            if self.monitor.faulted(self.stream) is not None:
                self._sit_out(stopping)
                continue
            self.wait_for_learner(stopping)
            try:
                self.run_episode()
            except SafetyError:  # the reset found the e-stop engaged: nothing was recorded
                if self.monitor.faulted(self.stream) is None:
                    raise
                continue  # the health monitor held the robot as its episode began: sit out
            if self.robot.estopped and self.monitor.faulted(self.stream) is None:
                log.warning("robot %s: e-stop pressed at the teleop; it holds", self.stream)
                return "estop"
        return "budget"

    def _sit_out(self, stopping: Callable[[], bool]) -> None:
        """Held by the health monitor: wait until the robot is healthy, then rejoin."""
        log.warning("robot %s sits out, held: %s", self.stream, self.monitor.faulted(self.stream))
        while not stopping():
            try:
                self.monitor.rejoin(self.stream)
            except HardwareError:
                time.sleep(HEALTH_POLL_S)
                continue
            log.warning("robot %s is healthy again and rejoins the session", self.stream)
            return

    def status(self) -> dict[str, object]:
        """What the session shows of this robot."""
        fault = self.monitor.faulted(self.stream)
        lost = self.lease.lost if self.lease is not None else None
        lease = "-" if self.lease is None else "lost" if lost else "faulted" if fault else "held"
        return {"robot": self.stream, "version": self.policy.version,
                "sync_latency_s": self.sync_latency_s, "safety": dict(self.robot.events),
                "estopped": self.robot.estopped and fault is None,
                "health": "ok" if fault is None else f"held ({fault})", "lease": lease}

    def close(self) -> None:
        """The robot holds and disconnects; the teleop device is released."""
        self.monitor.stop()
        try:
            self.robot.disconnect()
        finally:
            if self.teleop is not None:
                self.teleop.close()
