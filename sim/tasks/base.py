"""What a sim task adds to an arm: objects, task state, resets, reward and success."""

from __future__ import annotations

from abc import ABC, abstractmethod

import mujoco
import numpy as np

from hal.outcome import TaskOutcome
from robot_rl.core import ArraySpec

__all__ = ["Task", "TaskOutcome"]


class Task(ABC):
    """A manipulation task in a MuJoCo scene; stateless apart from what lives in MjData."""

    name: str
    max_steps: int = 50
    initial_gripper: float = 0.0  # gripper command at reset: -1 open, +1 closed
    settle_steps: int = 0  # physics steps after reset (e.g. to let a held object settle)
    ee_site: int = -1  # id of the arm's `ee` site, set by `bind`

    def bind(self, model: mujoco.MjModel, ee_site: int) -> None:
        """Called once the scene is compiled: remember the ids the task reads."""
        self.ee_site = ee_site

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

    def settle(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:  # noqa: B027 (optional)
        """Called after each of the `settle_steps` reset physics steps (e.g. to hold a part)."""

    def state(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """The true task state (for experts), even when the observation hides it."""
        return self.observe(model, data)

    @abstractmethod
    def restore(
        self, model: mujoco.MjModel, data: mujoco.MjData, obs: dict[str, np.ndarray]
    ) -> None:
        """Put task objects where a recorded observation says they were (for replays)."""

    @abstractmethod
    def evaluate(self, model: mujoco.MjModel, data: mujoco.MjData) -> TaskOutcome: ...
