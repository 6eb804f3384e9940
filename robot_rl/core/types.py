"""The values that flow through a session: transitions, episodes and training batches."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

Observation = dict[str, np.ndarray]


class Source(enum.IntEnum):
    """Who chose the action of a step; stored as a small integer."""

    POLICY = 0
    HUMAN = 1
    DEMO = 2
    SCRIPTED = 3


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
