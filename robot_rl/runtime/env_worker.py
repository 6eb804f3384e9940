"""One robot of a session in its own process: the actor's episodes, committed to the session's
writer, new weights applied between two steps.

The worker knows its writer and its learner only through `SessionPorts`, which the Ray layer
(`runtime.ray`) fills with remote calls, so this module runs (and is tested) without Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from hal import task_outcomes
from robot_rl.core import Episode
from robot_rl.runtime.actor import Actor, ActorConfig, PolicySource, steps
from robot_rl.runtime.build import build_algorithm, build_reward, build_robot


GATE_S = 0.05  # how often a waiting sim robot looks at the learner's progress


@dataclass(frozen=True)
class WeightUpdate:
    """A policy version as the learner published it."""

    version: int
    weights: dict[str, np.ndarray]
    published_at: float  # time.time() when the learner had it
    updates: int  # the learner's update count then


@dataclass
class SessionPorts:
    """What a worker calls: the writer (blocking, durable on return) and the learner (never
    blocking: `poll_weights` answers None until a newer version is there)."""

    next_episode_id: Callable[[], int]
    last_seq: Callable[[str], int]
    commit_episode: Callable[[str, int, Episode], int]
    poll_weights: Callable[[], WeightUpdate | None]
    learner_updates: Callable[[], int]


class EnvWorker:
    """A sim robot run for a session: unpaced, it never runs more than `max_lead` steps ahead of
    the learner's update-to-data ratio (a sim may wait; a paced robot never does)."""

    def __init__(self, cfg: DictConfig, ports: SessionPorts, stored_steps: int, *,
                 gated: bool = True) -> None:
        self.cfg, self.ports = cfg, ports
        self.arm, self.robot = build_robot(cfg)
        spec = self.arm.observation_spec
        self.stream = str(cfg.robot.id)
        self.rng = np.random.default_rng([int(cfg.seed), 1])
        self.policy = build_algorithm(cfg, spec, self.arm.action_spec).policy
        self.stored = stored_steps
        self.paced = bool(cfg.runtime.realtime)
        self.gated = gated and not self.paced  # sync mode: the session itself alternates
        self.source = PolicySource(self.policy, self.arm.action_spec, self.rng,
                                   exploring=lambda: self.stored < cfg.learner.warmup_steps)
        period = 1.0 / float(cfg.robot.control_hz) if self.paced else 0.0
        self.actor = Actor(self.robot, build_reward(cfg, spec), ActorConfig(
            max_steps=int(cfg.task.max_steps), task_reward=cfg.task.reward, period=period),
            outcomes=task_outcomes(self.arm))
        self.seq = ports.last_seq(self.stream) + 1
        self.sync_latency_s: float | None = None
        self.learner_updates = 0
        self.robot.connect()

    def apply_weights(self, update: WeightUpdate) -> None:
        """A new policy version, taken at a step boundary (between two actions)."""
        self.policy.set_weights(update.weights, update.version)
        self.sync_latency_s = time.time() - update.published_at
        self.learner_updates = update.updates

    def _between_steps(self) -> None:
        self._take_weights()
        if not self.gated or self.stored < self.cfg.learner.warmup_steps:
            return
        ratio, lead = float(self.cfg.learner.updates_per_step), int(self.cfg.runtime.max_lead)
        while (self.stored - self.cfg.learner.warmup_steps) * ratio - lead > self.learner_updates:
            time.sleep(GATE_S)  # a sim waits for the learner, taking new weights meanwhile
            self._take_weights()
            self.learner_updates = max(self.learner_updates, self.ports.learner_updates())

    def _take_weights(self) -> None:
        update = self.ports.poll_weights()
        if update is not None:
            self.apply_weights(update)

    def run_episode(self) -> Episode:
        """One episode, committed whole (durable) before this returns."""
        episode = Episode(self.ports.next_episode_id(), self.robot.robot_id, self.cfg.task.name)
        for transition in steps(self.actor.episode(self.source, episode.episode_id)):
            episode.transitions.append(transition)
            self._between_steps()
        episode.success = self.actor.success
        self.stored = self.ports.commit_episode(self.stream, self.seq, episode)
        self.seq += episode.length
        return episode

    def safety_events(self) -> dict[str, int]:
        return dict(self.robot.events)

    def close(self) -> None:
        """The robot holds and disconnects."""
        self.robot.disconnect()
