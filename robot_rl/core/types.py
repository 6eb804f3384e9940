"""The values that flow through a session: transitions, episodes and training batches."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from robot_rl.core.errors import SpecError

Observation = dict[str, np.ndarray]


class Source(enum.IntEnum):
    """Who chose the action of a step; stored as a small integer."""

    POLICY = 0
    HUMAN = 1
    DEMO = 2
    SCRIPTED = 3
    HOLD = 4
    """Nobody acted (no action in time, e-stop): the safety layer held the robot."""


@dataclass(frozen=True)
class Transition:
    """One control step of one robot, with everything needed to learn from it and trace it."""

    obs: Observation
    action: np.ndarray
    reward: float
    next_obs: Observation
    terminated: bool
    truncated: bool
    intervened: bool = False
    source: Source = Source.POLICY
    policy_version: int = 0
    robot_id: str = "robot0"
    episode_id: int = 0
    step: int = 0
    wall_time: float = 0.0
    mono_time: float = 0.0

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass
class Episode:
    """The transitions of one episode of one robot, and how it ended."""

    episode_id: int
    robot_id: str
    task: str
    transitions: list[Transition] = field(default_factory=list)
    success: bool = False

    @property
    def length(self) -> int:
        return len(self.transitions)

    @property
    def total_reward(self) -> float:
        return float(sum(t.reward for t in self.transitions))

    @property
    def interventions(self) -> int:
        return sum(1 for t in self.transitions if t.intervened)


@dataclass(frozen=True)
class Batch:
    """A training batch: arrays with a leading batch dimension, ready for a learner."""

    obs: Observation
    action: np.ndarray
    reward: np.ndarray
    next_obs: Observation
    terminated: np.ndarray
    intervened: np.ndarray
    source: np.ndarray
    policy_version: np.ndarray
    discount: np.ndarray | None = None  # n-step: bootstrap with gamma * discount (None: 1)

    def __len__(self) -> int:
        return int(self.action.shape[0])

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """One batch holding the rows of all `batches` in order; their fields must match."""
        keys = sorted(batches[0].obs)
        for b in batches[1:]:
            if sorted(b.obs) != keys:
                raise SpecError(
                    f"cannot mix batches with different observation fields: {keys} vs "
                    f"{sorted(b.obs)}; demos must be recorded with the robot's observation layout")

        def cat(field_name: str) -> np.ndarray:
            return np.concatenate([getattr(b, field_name) for b in batches])

        discounts = [b.discount for b in batches]
        return Batch(
            obs={k: np.concatenate([b.obs[k] for b in batches]) for k in keys},
            action=cat("action"), reward=cat("reward"),
            next_obs={k: np.concatenate([b.next_obs[k] for b in batches]) for k in keys},
            terminated=cat("terminated"), intervened=cat("intervened"), source=cat("source"),
            policy_version=cat("policy_version"),
            discount=None if all(d is None for d in discounts) else np.concatenate(
                [np.ones(len(b), np.float32) if b.discount is None else b.discount
                 for b in batches]),
        )
