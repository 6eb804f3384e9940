"""A MuJoCo arm that IS a hal.Robot: Δ end-effector control through IK at the physics rate."""

from __future__ import annotations

import logging
import math
from importlib import resources

import mujoco
import numpy as np

from hal.robot import Health, HealthStatus, Robot
from robot_rl.core import ArraySpec, DictSpec, HardwareError, Observation
from sim.ik import DLSIK
from sim.tasks.base import Task, TaskOutcome

log = logging.getLogger(__name__)

ARM_JOINTS = ["j_yaw", "j_shoulder", "j_elbow", "j_wrist", "j_roll"]
FINGER_ACTUATORS = ["a_finger_left", "a_finger_right"]
HOME_QPOS = np.array([0.0, 0.25, 0.35, -0.6, 0.0])  # pinch point near (0.3, 0, 0.2), pointing down
FINGER_OPEN = 0.04

SCENE = """<mujoco model="robot_rl_scene">
  <include file="{arm}"/>
  <visual><global offwidth="640" offheight="480"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".55 .55 .5" rgb2=".45 .45 .4"
             width="256" height="256"/>
    <material name="table" texture="grid" texrepeat="8 8"/>
  </asset>
  <worldbody>
    <light pos="0 -0.5 1.5" dir="0 0.3 -1" diffuse="0.8 0.8 0.8"/>
    <geom name="table" type="plane" size="1 1 0.05" material="table"/>
    <camera name="side_cam" pos="0.3 -0.75 0.45" xyaxes="1 0 0 0 0.5 0.866" fovy="55"/>
    {task}
  </worldbody>
</mujoco>"""


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class MujocoArm(Robot):
    """Our small 5-DoF arm with a parallel gripper, doing `task`.

    Action: `[dx, dy, dz, dyaw, gripper]` in [-1, 1]; translation is scaled by
    `translation_scale` metres and yaw by `yaw_scale` radians per step; gripper > 0 closes.
    Each `send_action` advances physics by one control period (1 / control_hz seconds).
    """

    def __init__(
        self,
        task: Task,
        *,
        control_hz: float = 10.0,
        seed: int = 0,
        robot_id: str = "sim0",
        translation_scale: float = 0.05,
        yaw_scale: float = 0.2,
    ) -> None:
        self.task = task
        self.control_hz = control_hz
        self.robot_id = robot_id
        self.translation_scale = translation_scale
        self.yaw_scale = yaw_scale
        self._rng = np.random.default_rng(seed)
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._fault: str | None = None
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._action_spec = ArraySpec((5,), "float32", -1.0, 1.0)
        fields = {
            "joint_pos": ArraySpec((5,), "float32"),
            "joint_vel": ArraySpec((5,), "float32"),
            "ee_pos": ArraySpec((3,), "float32"),
            "ee_yaw": ArraySpec((1,), "float32"),
            "gripper": ArraySpec((1,), "float32"),
        }
        fields.update(task.observation_spec())
        self._obs_spec = DictSpec(fields)

    # -- lifecycle -------------------------------------------------------------------------------
    def connect(self) -> None:
        if self.model is not None:
            return
        arm = resources.files("sim") / "assets" / "small_arm.xml"
        xml = SCENE.format(arm=str(arm), task=self.task.scene_xml())
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self._substeps = max(1, round(1.0 / (self.control_hz * self.model.opt.timestep)))
        self._ik = DLSIK(self.model, "ee", ARM_JOINTS)
        self._qadr = self._ik.qadr
        self._dadr = self._ik.dadr
        self._arm_act = np.array([self.model.actuator(f"a_{j[2:]}").id for j in ARM_JOINTS])
        self._finger_act = np.array([self.model.actuator(a).id for a in FINGER_ACTUATORS])
        self._finger_q = np.array(
            [self.model.joint(j).qposadr[0] for j in ("j_finger_left", "j_finger_right")]
        )
        self.reset()

    def disconnect(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self.model = self.data = None

    def _require(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        if self.model is None or self.data is None:
            raise HardwareError(f"{self.robot_id} is not connected: call connect() first")
        return self.model, self.data

    # -- specs -----------------------------------------------------------------------------------
    @property
    def observation_spec(self) -> DictSpec:
        return self._obs_spec

    @property
    def action_spec(self) -> ArraySpec:
        return self._action_spec

    # -- observation -----------------------------------------------------------------------------
    def _ee_yaw(self) -> float:
        m, d = self._require()
        mat = d.site("ee").xmat.reshape(3, 3)
        return math.atan2(mat[1, 0], mat[0, 0])

    def get_observation(self) -> Observation:
        m, d = self._require()
        obs = {
            "joint_pos": d.qpos[self._qadr].astype(np.float32),
            "joint_vel": d.qvel[self._dadr].astype(np.float32),
            "ee_pos": d.site("ee").xpos.astype(np.float32),
            "ee_yaw": np.array([self._ee_yaw()], dtype=np.float32),
            "gripper": np.array([d.qpos[self._finger_q].sum() / (2 * FINGER_OPEN)], np.float32),
        }
        obs.update(self.task.observe(m, d))
        return obs

    def outcome(self) -> TaskOutcome:
        """The task rule's reward and success for the current state (sim only: privileged)."""
        m, d = self._require()
        return self.task.evaluate(m, d)

    # -- control ---------------------------------------------------------------------------------
    def send_action(self, action: np.ndarray) -> np.ndarray:
        m, d = self._require()
        applied = self._action_spec.clip(np.asarray(action, dtype=np.float32))
        target = d.site("ee").xpos + applied[:3] * self.translation_scale
        target[2] = max(target[2], 0.01)  # never aim into the table
        yaw = self._ee_yaw() + float(applied[3]) * self.yaw_scale
        solution = self._ik.solve(d.qpos, target, _yaw_quat(yaw))
        d.ctrl[self._arm_act] = solution.qpos
        d.ctrl[self._finger_act] = FINGER_OPEN * (1.0 - float(applied[4])) / 2.0
        self._step_physics(self._substeps)
        return applied

    def _step_physics(self, n: int) -> None:
        m, d = self._require()
        mujoco.mj_step(m, d, nstep=n)
        unstable = d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number > 0
        if unstable or not np.all(np.isfinite(d.qpos)):
            self._fault = "physics became unstable (bad accelerations); reset required"
            log.error("%s: %s", self.robot_id, self._fault)

    def reset(self) -> Observation:
        m, d = self._require()
        mujoco.mj_resetData(m, d)
        d.qpos[self._qadr] = HOME_QPOS + self._rng.normal(0.0, 0.05, size=len(HOME_QPOS))
        d.qpos[self._finger_q] = FINGER_OPEN / 2
        d.ctrl[self._arm_act] = d.qpos[self._qadr]
        d.ctrl[self._finger_act] = FINGER_OPEN / 2
        self.task.reset(m, d, self._rng)
        mujoco.mj_forward(m, d)
        self._fault = None
        return self.get_observation()

    def health(self) -> Health:
        if self.model is None:
            return Health(HealthStatus.DISCONNECTED, "not connected")
        if self._fault is not None:
            return Health(HealthStatus.FAULT, self._fault)
        return Health(HealthStatus.OK)

    # -- rendering -------------------------------------------------------------------------------
    def render_state(self, obs: Observation, camera: str, height: int, width: int) -> np.ndarray:
        """Re-create the scene from a recorded observation and render it (for replays)."""
        m, d = self._require()
        d.qpos[self._qadr] = obs["joint_pos"]
        d.qpos[self._finger_q] = float(obs["gripper"][0]) * FINGER_OPEN
        self.task.restore(m, d, obs)
        mujoco.mj_forward(m, d)
        return self.render(camera, height, width)

    def render(self, camera: str = "side_cam", height: int = 128, width: int = 128) -> np.ndarray:
        """An RGB uint8 image from a named camera of the scene."""
        m, d = self._require()
        renderer = self._renderers.get((height, width))
        if renderer is None:
            renderer = self._renderers[(height, width)] = mujoco.Renderer(m, height, width)
        renderer.update_scene(d, camera=camera)
        return renderer.render()
