"""Peg insertion: a held square peg goes into a square hole with millimetre clearance."""

from __future__ import annotations

import mujoco
import numpy as np

from sim.tasks.base import TaskOutcome
from sim.tasks.objects import ObjectTask, yaw_of
from sim.tasks.registry import TASKS

PEG_HALF = 0.012  # half-width of the square peg
PEG_HALF_LENGTH = 0.035
HOLE_DEPTH = 0.04
WALL = 0.012  # wall thickness


@TASKS.register("peg_insertion")
class PegInsertionTask(ObjectTask):
    """The peg starts in the closed gripper; success when its tip is `depth` below the rim.

    `clearance` is the gap on each side between peg and hole (2 mm by default), so the peg's
    position must be right to about a millimetre and its yaw to about 0.1 rad.
    """

    name = "peg_insertion"
    initial_gripper = 1.0
    settle_steps = 100

    def __init__(
        self,
        max_steps: int = 100,
        clearance: float = 0.002,
        depth: float = 0.025,
        hole_low: tuple[float, float] = (0.22, -0.1),
        hole_high: tuple[float, float] = (0.3, 0.1),
        privileged_state: bool = True,
    ) -> None:
        super().__init__(max_steps, privileged_state)
        self.clearance = clearance
        self.depth = depth
        self.hole_low, self.hole_high = np.asarray(hole_low), np.asarray(hole_high)

    def scene_xml(self) -> str:
        inner = PEG_HALF + self.clearance
        h = HOLE_DEPTH / 2
        walls = []
        for sx, sy, hx, hy in ((1, 0, WALL / 2, inner + WALL), (-1, 0, WALL / 2, inner + WALL),
                               (0, 1, inner, WALL / 2), (0, -1, inner, WALL / 2)):
            cx, cy = sx * (inner + WALL / 2), sy * (inner + WALL / 2)
            walls.append(f'<geom type="box" pos="{cx} {cy} {h}" size="{hx} {hy} {h}" '
                         'rgba="0.85 0.75 0.3 1" friction="0.3 0.005 0.0001"/>')
        return (
            '<body name="goal" mocap="true" pos="0.26 0 0">' + "".join(walls) + "</body>"
            f'<body name="object" pos="0.26 0 0.2"><freejoint/>'
            f'<geom name="object" type="box" size="{PEG_HALF} {PEG_HALF} {PEG_HALF_LENGTH}" '
            'mass="0.03" condim="4" friction="1.5 0.02 0.001" rgba="0.2 0.3 0.9 1"/></body>'
        )

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        self.place_goal(data, np.array([*rng.uniform(self.hole_low, self.hole_high), 0.0]))
        self.settle(model, data)

    def settle(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        """Hold the peg between the pads while the gripper closes on it."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[self.ee_site])
        self.place_object(data, data.site_xpos[self.ee_site].copy(), quat)

    def tip(self, data: mujoco.MjData) -> np.ndarray:
        """Centre of the peg's lower face (the peg may tilt in the grip)."""
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, self.object_quat(data))
        return self.object_pos(data) - rot.reshape(3, 3)[:, 2] * PEG_HALF_LENGTH

    def evaluate(self, model: mujoco.MjModel, data: mujoco.MjData) -> TaskOutcome:
        tip, hole = self.tip(data), self.goal_pos(data)
        offset = float(np.linalg.norm(tip[:2] - hole[:2]))
        below_rim = HOLE_DEPTH - float(tip[2])
        inside = offset < self.clearance + 0.001 and below_rim >= self.depth
        yaw_error = abs((yaw_of(self.object_quat(data)) + np.pi / 4) % (np.pi / 2) - np.pi / 4)
        dense = -offset - 0.1 * yaw_error - 0.5 * max(self.depth - below_rim, 0.0)
        return TaskOutcome(dense_reward=dense, success=bool(inside))
