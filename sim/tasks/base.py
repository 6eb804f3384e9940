"""What a sim task adds to an arm: objects, task state, resets, reward and success."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import mujoco
import numpy as np

from robot_rl.core import ArraySpec


@dataclass(frozen=True)
class TaskOutcome:
    """How the current state scores: a shaped reward and the success detector's verdict."""

    dense_reward: float
    success: bool

    def reward(self, kind: str) -> float:
        return float(self.success) if kind == "sparse" else self.dense_reward


class Task(ABC):
    """A manipulation task in a MuJoCo scene; stateless apart from what lives in MjData."""

    name: str
    max_steps: int = 50

    @abstractmethod
    def scene_xml(self) -> str:
        """MJCF children of <worldbody> for this task's objects and markers."""

    @abstractmethod
    def observation_spec(self) -> dict[str, ArraySpec]:
        """Task state added to the robot's observation (empty for pixel-only tasks)."""

    @abstractmethod
    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Place objects and targets for a new episode."""

    @abstractmethod
    def observe(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def restore(self, model: mujoco.MjModel, data: mujoco.MjData, obs: dict[str, np.ndarray]) -> None:
        """Put task objects where a recorded observation says they were (for replays)."""

    @abstractmethod
    def evaluate(self, model: mujoco.MjModel, data: mujoco.MjData) -> TaskOutcome: ...
