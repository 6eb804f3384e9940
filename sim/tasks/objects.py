"""Shared parts of tasks with one free object and one goal: state, observation, restore."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from robot_rl.core import ArraySpec
from sim.tasks.base import Task

STATE_SPEC = {
    "object_pos": ArraySpec((3,), "float32"),
    "object_quat": ArraySpec((4,), "float32"),
    "goal_pos": ArraySpec((3,), "float32"),
}
RELATIVE_SPEC = {  # what a state pipeline on a real cell computes from the same poses
    "object_from_ee": ArraySpec((3,), "float32"),
    "goal_from_object": ArraySpec((3,), "float32"),
    "object_yaw_from_ee": ArraySpec((1,), "float32"),
}


def yaw_of(quat: np.ndarray) -> float:
    """Rotation about world z of a quaternion (w, x, y, z)."""
    w, x, y, z = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def wrap_quarter(angle: float) -> float:
    """An angle folded into [-pi/4, pi/4): the yaw error to the nearest face of a square."""
    return (angle + math.pi / 4) % (math.pi / 2) - math.pi / 4


def site_yaw(data: mujoco.MjData, site: int) -> float:
    """Rotation about world z of a site's frame."""
    mat = data.site_xmat[site].reshape(3, 3)
    return math.atan2(mat[1, 0], mat[0, 0])


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class ObjectTask(Task):
    """A task with a free body `object` and a mocap body `goal`.

    With `privileged_state=True` the observation holds the object and goal poses and the same
    poses relative to the gripper (object from pinch point, goal from object, the object's yaw
    from the gripper's, folded to its nearest face): the frame a policy acts in, as `to_target`
    is for reach. With `privileged_state=False` all of it is left out, so a policy must see the
    scene through the cameras (the pixel-only variant); experts and rewards still read the true
    state.
    """

    def __init__(self, max_steps: int, privileged_state: bool = True) -> None:
        self.max_steps = max_steps
        self.privileged_state = privileged_state

    def bind(self, model: mujoco.MjModel, ee_site: int) -> None:
        super().bind(model, ee_site)
        joint = model.body("object").jntadr[0]
        self._qadr = int(model.jnt_qposadr[joint])
        self._dadr = int(model.jnt_dofadr[joint])
        self._goal = int(model.body("goal").mocapid[0])

    # -- state -----------------------------------------------------------------------------------
    def object_pos(self, data: mujoco.MjData) -> np.ndarray:
        return data.qpos[self._qadr:self._qadr + 3].copy()

    def object_quat(self, data: mujoco.MjData) -> np.ndarray:
        return data.qpos[self._qadr + 3:self._qadr + 7].copy()

    def goal_pos(self, data: mujoco.MjData) -> np.ndarray:
        return data.mocap_pos[self._goal].copy()

    def place_object(
        self, data: mujoco.MjData, pos: np.ndarray, orientation: float | np.ndarray
    ) -> None:
        """Put the object at `pos`, turned by a yaw angle or a full quaternion."""
        quat = yaw_quat(orientation) if np.isscalar(orientation) else orientation
        data.qpos[self._qadr:self._qadr + 3] = pos
        data.qpos[self._qadr + 3:self._qadr + 7] = quat
        data.qvel[self._dadr:self._dadr + 6] = 0.0

    def place_goal(self, data: mujoco.MjData, pos: np.ndarray) -> None:
        data.mocap_pos[self._goal] = pos

    def state(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """The true task state, whether or not the observation shows it."""
        return {"object_pos": self.object_pos(data).astype(np.float32),
                "object_quat": self.object_quat(data).astype(np.float32),
                "goal_pos": self.goal_pos(data).astype(np.float32)}

    # -- Task ------------------------------------------------------------------------------------
    def observation_spec(self) -> dict[str, ArraySpec]:
        return {**STATE_SPEC, **RELATIVE_SPEC} if self.privileged_state else {}

    def observe(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, np.ndarray]:
        if not self.privileged_state:
            return {}
        state = self.state(model, data)
        obj, ee = self.object_pos(data), data.site_xpos[self.ee_site]
        yaw = wrap_quarter(yaw_of(self.object_quat(data)) - site_yaw(data, self.ee_site))
        return {**state,
                "object_from_ee": (obj - ee).astype(np.float32),
                "goal_from_object": (self.goal_pos(data) - obj).astype(np.float32),
                "object_yaw_from_ee": np.array([yaw], np.float32)}

    def restore(
        self, model: mujoco.MjModel, data: mujoco.MjData, obs: dict[str, np.ndarray]
    ) -> None:
        """Pixel-only recordings carry no object state: objects then stay where they are."""
        if "object_pos" in obs:
            data.qpos[self._qadr:self._qadr + 3] = obs["object_pos"]
            data.qpos[self._qadr + 3:self._qadr + 7] = obs["object_quat"]
            self.place_goal(data, obs["goal_pos"])
