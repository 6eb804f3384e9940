"""Push: slide a block across the table onto a goal disc without lifting it."""

from __future__ import annotations

import mujoco
import numpy as np

from sim.tasks.base import TaskOutcome
from sim.tasks.objects import ObjectTask
from sim.tasks.registry import TASKS

HALF = 0.025  # block half-size, metres


@TASKS.register("push")
class PushTask(ObjectTask):
    """Success when the block's centre is within `tolerance` metres (in xy) of the goal."""

    name = "push"

    def __init__(
        self,
        max_steps: int = 80,
        tolerance: float = 0.03,
        object_low: tuple[float, float] = (0.2, -0.1),
        object_high: tuple[float, float] = (0.3, 0.1),
        goal_distance: tuple[float, float] = (0.08, 0.14),
        privileged_state: bool = True,
    ) -> None:
        super().__init__(max_steps, privileged_state)
        self.tolerance = tolerance
        self.object_low, self.object_high = np.asarray(object_low), np.asarray(object_high)
        self.goal_distance = goal_distance

    def scene_xml(self) -> str:
        return (
            f'<body name="object" pos="0.25 0 {HALF}"><freejoint/>'
            f'<geom name="object" type="box" size="{HALF} {HALF} {HALF}" mass="0.2" '
            'friction="0.6 0.005 0.0001" rgba="0.2 0.4 0.9 1"/></body>'
            '<body name="goal" mocap="true" pos="0.3 0 0.001">'
            f'<geom type="cylinder" size="{self.tolerance} 0.001" rgba="0.1 0.8 0.2 0.5" '
            'contype="0" conaffinity="0"/></body>'
        )

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        start = rng.uniform(self.object_low, self.object_high)
        angle = rng.uniform(-np.pi, np.pi)
        goal = start + rng.uniform(*self.goal_distance) * np.array([np.cos(angle), np.sin(angle)])
        goal = np.clip(goal, self.object_low - 0.05, self.object_high + 0.05)
        self.place_object(data, np.array([*start, HALF]), rng.uniform(-0.5, 0.5))
        self.place_goal(data, np.array([*goal, 0.001]))

    def evaluate(self, model: mujoco.MjModel, data: mujoco.MjData) -> TaskOutcome:
        obj, goal = self.object_pos(data), self.goal_pos(data)
        to_goal = float(np.linalg.norm(obj[:2] - goal[:2]))
        reach = float(np.linalg.norm(data.site_xpos[self.ee_site] - obj))
        return TaskOutcome(dense_reward=-to_goal - 0.5 * reach, success=to_goal < self.tolerance)
