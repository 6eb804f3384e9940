"""Reach: bring the gripper's pinch point to a randomly placed target."""

from __future__ import annotations

import mujoco
import numpy as np

from robot_rl.core import ArraySpec
from sim.tasks.base import Task, TaskOutcome
from sim.tasks.registry import TASKS


@TASKS.register("reach")
class ReachTask(Task):
    """Success when the pinch point is within `tolerance` metres of the target.

    The dense reward is minus the distance times `dense_scale`, so per-step progress is not
    drowned by SAC's entropy bonus.
    """

    name = "reach"

    def __init__(
        self,
        max_steps: int = 50,
        tolerance: float = 0.04,
        dense_scale: float = 10.0,
        target_low: tuple[float, float, float] = (0.15, -0.2, 0.08),
        target_high: tuple[float, float, float] = (0.4, 0.2, 0.35),
    ) -> None:
        self.max_steps = max_steps
        self.tolerance = tolerance
        self.dense_scale = dense_scale
        self.target_low = np.asarray(target_low)
        self.target_high = np.asarray(target_high)

    def scene_xml(self) -> str:
        return (
            '<body name="target" mocap="true" pos="0.3 0 0.2">'
            '<geom type="sphere" size="0.02" rgba="0.1 0.8 0.2 0.6" contype="0" conaffinity="0"/>'
            "</body>"
        )

    def observation_spec(self) -> dict[str, ArraySpec]:
        return {"target_pos": ArraySpec((3,), "float32"), "to_target": ArraySpec((3,), "float32")}

    def _target(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        return data.mocap_pos[model.body("target").mocapid[0]]

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        self._target(model, data)[:] = rng.uniform(self.target_low, self.target_high)

    def observe(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, np.ndarray]:
        target = self._target(model, data)
        return {
            "target_pos": target.astype(np.float32),
            "to_target": (target - data.site_xpos[self.ee_site]).astype(np.float32),
        }

    def restore(
        self, model: mujoco.MjModel, data: mujoco.MjData, obs: dict[str, np.ndarray]
    ) -> None:
        self._target(model, data)[:] = obs["target_pos"]

    def evaluate(self, model: mujoco.MjModel, data: mujoco.MjData) -> TaskOutcome:
        dist = float(np.linalg.norm(data.site_xpos[self.ee_site] - self._target(model, data)))
        return TaskOutcome(dense_reward=-self.dense_scale * dist, success=dist < self.tolerance)
