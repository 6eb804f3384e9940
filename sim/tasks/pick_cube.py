"""Pick and place: grasp a cube from the table and hold it at a goal point in the air."""

from __future__ import annotations

import mujoco
import numpy as np

from sim.tasks.base import TaskOutcome
from sim.tasks.objects import ObjectTask
from sim.tasks.registry import TASKS

HALF = 0.02  # cube half-size, metres


@TASKS.register("pick_cube")
class PickCubeTask(ObjectTask):
    """Success when the cube's centre is within `tolerance` metres of the goal point.

    The dense reward is a cost, never positive: `dense_scale` times the pinch point's distance
    to the cube, plus the cube's distance to the goal, plus 0.1 while the cube is on the table.
    Success ends the episode, so every step before it costs: a positive bonus (say, for holding
    the cube) would pay the policy for hovering short of the goal instead of finishing.
    """

    name = "pick_cube"

    def __init__(
        self,
        max_steps: int = 100,
        tolerance: float = 0.03,
        dense_scale: float = 5.0,
        object_low: tuple[float, float] = (0.2, -0.12),
        object_high: tuple[float, float] = (0.3, 0.12),
        goal_low: tuple[float, float, float] = (0.18, -0.12, 0.06),
        goal_high: tuple[float, float, float] = (0.3, 0.12, 0.1),
        privileged_state: bool = True,
    ) -> None:
        super().__init__(max_steps, privileged_state)
        self.tolerance = tolerance
        self.dense_scale = dense_scale
        self.object_low, self.object_high = np.asarray(object_low), np.asarray(object_high)
        self.goal_low, self.goal_high = np.asarray(goal_low), np.asarray(goal_high)

    def scene_xml(self) -> str:
        return (
            f'<body name="object" pos="0.25 0 {HALF}"><freejoint/>'
            f'<geom name="object" type="box" size="{HALF} {HALF} {HALF}" mass="0.05" '
            'friction="1.5 0.01 0.001" rgba="0.9 0.2 0.2 1"/></body>'
            '<body name="goal" mocap="true" pos="0.25 0 0.1">'
            f'<geom type="sphere" size="{self.tolerance}" rgba="0.1 0.8 0.2 0.35" '
            'contype="0" conaffinity="0"/></body>'
        )

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        start = rng.uniform(self.object_low, self.object_high)
        self.place_object(data, np.array([*start, HALF]), rng.uniform(-0.6, 0.6))
        self.place_goal(data, rng.uniform(self.goal_low, self.goal_high))

    def lifted(self, data: mujoco.MjData) -> bool:
        return bool(self.object_pos(data)[2] > HALF + 0.01)

    def evaluate(self, model: mujoco.MjModel, data: mujoco.MjData) -> TaskOutcome:
        obj, goal = self.object_pos(data), self.goal_pos(data)
        to_goal = float(np.linalg.norm(obj - goal))
        reach = float(np.linalg.norm(data.site_xpos[self.ee_site] - obj))
        on_table = 0.0 if self.lifted(data) else 0.1
        dense = -self.dense_scale * (reach + to_goal + on_table)
        return TaskOutcome(dense_reward=dense, success=to_goal < self.tolerance)
