"""A MuJoCo arm that IS a hal.Robot: Δ end-effector control through IK at the physics rate."""

from __future__ import annotations

import atexit
import copy
import functools
import logging
import math
import weakref
from collections.abc import Sequence
from pathlib import Path

import mujoco
import numpy as np

from hal.outcome import TaskOutcome, TaskOutcomeSource
from hal.robot import Health, HealthStatus, Robot
from robot_rl.core import ArraySpec, DictSpec, HardwareError, Observation
from sim.arm_models import ARMS, PREFIX, ArmModel
from sim.ik import DLSIK
from sim.randomization import DomainRandomizer, RandomizationConfig
from sim.tasks.base import Task
from sim.tasks.objects import site_yaw

log = logging.getLogger(__name__)

ARM_ROOT = "root"  # the arm's base body, renamed so every arm's root is `arm/root`
CAMERAS = {"wrist_cam": PREFIX + "wrist_cam", "side_cam": "side_cam"}  # name -> MJCF camera

UNSTABLE_WARNINGS = {  # MuJoCo resets the state itself on these; we turn them into a FAULT
    "bad positions": mujoco.mjtWarning.mjWARN_BADQPOS,
    "bad velocities": mujoco.mjtWarning.mjWARN_BADQVEL,
    "bad accelerations": mujoco.mjtWarning.mjWARN_BADQACC,
}

SCENE = """<mujoco model="robot_rl_scene">
  <option timestep="0.002" integrator="implicitfast"/>
  <visual>
    <global offwidth="640" offheight="480"/>
    <quality shadowsize="1024" offsamples="0"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".55 .55 .5" rgb2=".45 .45 .4"
             width="256" height="256"/>
    <material name="table" texture="grid" texrepeat="8 8"/>
  </asset>
  <worldbody>
    <light pos="0.3 -0.5 1.5" dir="0 0.3 -1" diffuse="0.8 0.8 0.8"/>
    <light pos="-0.3 0.4 1.2" dir="0.3 -0.2 -1" diffuse="0.3 0.3 0.3" castshadow="false"/>
    <geom name="table" type="plane" size="1 1 0.05" material="table"/>
    <camera name="side_cam" pos="0.22 -0.68 0.45" xyaxes="1 0 0 0 0.55 0.835" fovy="60"/>
    {task}
  </worldbody>
</mujoco>"""


@functools.lru_cache(maxsize=16)
def compile_scene(arm: str, task_xml: str) -> mujoco.MjModel:
    """The scene: `arm` attached under `arm/` plus the task objects (cached: meshes load slowly)."""
    model = ARMS.get(arm)()
    scene = mujoco.MjSpec.from_string(SCENE.format(task=task_xml))
    frame = scene.worldbody.add_frame(pos=list(model.base_pos))
    root = model.build_spec().worldbody.first_body()
    root.name = ARM_ROOT
    frame.attach_body(root, PREFIX, "")
    # MuJoCo filters contacts between jointed parent and child bodies, but not with the world,
    # and a base welded to the world counts as the world: a first link that sits in its base
    # (small_arm's) would grind on it and stall the base joint
    for child in scene.body(PREFIX + ARM_ROOT).bodies:
        scene.add_exclude(bodyname1=PREFIX + ARM_ROOT, bodyname2=child.name)
    return scene.compile()


_RENDERING: weakref.WeakSet[MujocoArm] = weakref.WeakSet()  # arms holding GL contexts


def _release_renderers() -> None:
    """Close GL contexts while the interpreter still works: an arm never disconnected (a gym env
    never closed) would otherwise free them during teardown, printing EGL tracebacks."""
    for arm in list(_RENDERING):
        arm.close_renderers()


_exit_hook_registered = False


def _track_renderer(arm: MujocoArm) -> None:
    global _exit_hook_registered
    if not _exit_hook_registered:  # after the GL backend's own exit hook, so it runs first
        atexit.register(_release_renderers)
        _exit_hook_registered = True
    _RENDERING.add(arm)


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class MujocoArm(Robot, TaskOutcomeSource):
    """An arm from `ARMS` (default: our small 5-DoF arm) with a parallel gripper, doing `task`.

    Action: `[dx, dy, dz, dyaw, gripper]` in [-1, 1]; translation is scaled by
    `translation_scale` metres and yaw by `yaw_scale` radians per step; gripper > 0 closes.
    Each `send_action` advances physics by one control period (1 / control_hz seconds).
    Observation: proprio (joints, EE pose, gripper opening), the task's state unless the task
    hides it, and one uint8 RGB image per camera in `cameras`.
    """

    def __init__(
        self,
        task: Task,
        *,
        arm: str = "small_arm",
        control_hz: float = 10.0,
        seed: int = 0,
        robot_id: str = "sim0",
        translation_scale: float = 0.05,
        yaw_scale: float = 0.2,
        cameras: Sequence[str] = (),
        image_size: int = 128,
        randomize: RandomizationConfig | None = None,
        fault_file: Path | None = None,
    ) -> None:
        unknown = sorted(set(cameras) - set(CAMERAS))
        if unknown:
            raise HardwareError(f"unknown cameras {unknown}; this sim has {list(CAMERAS)}")
        if image_size < 8:
            raise HardwareError(f"image_size must be at least 8 pixels, got {image_size}")
        self.task = task
        self.arm: ArmModel = ARMS.get(arm)()
        self.control_hz = control_hz
        self.robot_id = robot_id
        self.translation_scale = translation_scale
        self.yaw_scale = yaw_scale
        self.cameras = tuple(cameras)
        self.image_size = image_size
        self.randomize = randomize
        self.fault_file = fault_file  # while it exists, the arm reports a fault (drills, tests)
        self.seed(seed)
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._fault: str | None = None
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._action_spec = ArraySpec((5,), "float32", -1.0, 1.0)
        n = len(self.arm.arm_joints)
        fields = {
            "joint_pos": ArraySpec((n,), "float32"),
            "joint_vel": ArraySpec((n,), "float32"),
            "ee_pos": ArraySpec((3,), "float32"),
            "ee_yaw": ArraySpec((1,), "float32"),
            "gripper": ArraySpec((1,), "float32", 0.0, 1.0),
        }
        fields.update(task.observation_spec())
        size = (image_size, image_size, 3)
        fields.update({cam: ArraySpec(size, "uint8", 0, 255) for cam in self.cameras})
        self._obs_spec = DictSpec(fields)

    def seed(self, seed: int) -> None:
        """Restart the random stream of resets and randomization (same seed, same episodes)."""
        self._rng = np.random.default_rng(seed)

    # -- lifecycle -------------------------------------------------------------------------------
    def connect(self) -> None:
        if self.model is not None:
            return
        # Each arm gets its own copy: domain randomization edits the model.
        self.model = m = copy.copy(compile_scene(self.arm.name, self.task.scene_xml()))
        self.data = mujoco.MjData(m)
        self._substeps = max(1, round(1.0 / (self.control_hz * m.opt.timestep)))
        arm = self.arm
        self._ik = DLSIK(m, PREFIX + "ee", [PREFIX + j for j in arm.arm_joints],
                         rot_weight=arm.ik_rot_weight)
        self._qadr, self._dadr = self._ik.qadr, self._ik.dadr
        self._ee = m.site(PREFIX + "ee").id
        self._arm_act = np.array([m.actuator(PREFIX + a).id for a in arm.arm_actuators])
        self._grip_act = np.array([m.actuator(PREFIX + a).id for a in arm.gripper_actuators])
        self._grip_q = np.array([m.joint(PREFIX + j).qposadr[0] for j in arm.gripper_joints])
        root_id = m.body(PREFIX + ARM_ROOT).id
        arm_bodies = {b for b in range(m.nbody) if self._descends(b, root_id)}
        self._randomizer = (DomainRandomizer(m, arm_bodies, self.randomize)
                            if self.randomize is not None else None)
        self.task.bind(m, self._ee)
        self.reset()

    def _descends(self, body: int, root: int) -> bool:
        m = self.model
        while body > 0:
            if body == root:
                return True
            body = int(m.body_parentid[body])
        return False

    def disconnect(self) -> None:
        self.close_renderers()
        self.model = self.data = None

    def close_renderers(self) -> None:
        """Free the GL contexts of this arm's cameras (made again on the next render)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        _RENDERING.discard(self)

    def _require(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        if self.model is None or self.data is None:
            raise HardwareError(f"{self.robot_id} is not connected: call connect() first")
        return self.model, self.data

    @property
    def substeps(self) -> int:
        """Physics steps per control step (control_hz against the model's timestep)."""
        self._require()
        return self._substeps

    # -- specs -----------------------------------------------------------------------------------
    @property
    def observation_spec(self) -> DictSpec:
        return self._obs_spec

    @property
    def action_spec(self) -> ArraySpec:
        return self._action_spec

    # -- observation -----------------------------------------------------------------------------
    def ee_pos(self) -> np.ndarray:
        _, d = self._require()
        return d.site_xpos[self._ee].copy()

    def ee_yaw(self) -> float:
        _, d = self._require()
        return site_yaw(d, self._ee)

    def get_observation(self) -> Observation:
        m, d = self._require()
        obs = {
            "joint_pos": d.qpos[self._qadr].astype(np.float32),
            "joint_vel": d.qvel[self._dadr].astype(np.float32),
            "ee_pos": d.site_xpos[self._ee].astype(np.float32),
            "ee_yaw": np.array([self.ee_yaw()], dtype=np.float32),
            "gripper": np.array([self.arm.opening(d.qpos[self._grip_q])], np.float32),
        }
        obs.update(self.task.observe(m, d))
        for cam in self.cameras:
            obs[cam] = self.render(cam, self.image_size, self.image_size)
        return obs

    def task_state(self) -> dict[str, np.ndarray]:
        """The true task state (object and goal poses), for scripted experts (sim only)."""
        m, d = self._require()
        return self.task.state(m, d)

    def outcome(self) -> TaskOutcome:
        """The task rule's reward and success for the current state (sim only: privileged)."""
        m, d = self._require()
        return self.task.evaluate(m, d)

    # -- control ---------------------------------------------------------------------------------
    def send_action(self, action: np.ndarray) -> np.ndarray:
        m, d = self._require()
        if self._fault is not None or self._drill() is not None:  # safe hold: physics frozen
            return self.hold_action()
        applied = self._action_spec.clip(np.asarray(action, dtype=np.float32))
        target = d.site_xpos[self._ee] + applied[:3] * self.translation_scale
        target[2] = max(target[2], 0.01)  # never aim into the table
        yaw = self.ee_yaw() + float(applied[3]) * self.yaw_scale
        solution = self._ik.solve(d.qpos, target, _yaw_quat(yaw))
        d.ctrl[self._arm_act] = solution.qpos
        d.ctrl[self._grip_act] = self.arm.gripper_ctrl(float(applied[4]))
        self._step_physics(self._substeps)
        return applied

    def _step_physics(self, n: int) -> None:
        m, d = self._require()
        mujoco.mj_step(m, d, nstep=n)
        bad = [name for name, kind in UNSTABLE_WARNINGS.items() if d.warning[kind].number > 0]
        if bad or not np.all(np.isfinite(d.qpos)):
            self._fault = f"physics became unstable ({', '.join(bad) or 'non-finite state'}); " \
                          "reset required"
            log.error("%s: %s; holding until reset", self.robot_id, self._fault)

    def reset(self) -> Observation:
        m, d = self._require()
        if self._fault is not None:
            log.warning("%s: resetting after fault: %s", self.robot_id, self._fault)
        mujoco.mj_resetData(m, d)
        if self._randomizer is not None:
            self._randomizer.apply(m, self._rng)
        arm = self.arm
        d.qpos[self._qadr] = arm.home_qpos + self._rng.normal(0.0, 0.05, size=len(arm.home_qpos))
        grip = self.task.initial_gripper
        # A task that starts with an object in hand closes the open gripper on it while settling.
        d.qpos[self._grip_q] = arm.qpos_for_opening(1.0 if grip > 0 else (1.0 - grip) / 2.0)
        d.ctrl[self._arm_act] = d.qpos[self._qadr]
        d.ctrl[self._grip_act] = arm.gripper_ctrl(grip)
        mujoco.mj_forward(m, d)
        self.task.reset(m, d, self._rng)
        mujoco.mj_forward(m, d)
        for _ in range(self.task.settle_steps):
            mujoco.mj_step(m, d)
            self.task.settle(m, d)
        self._fault = None
        return self.get_observation()

    def _drill(self) -> str | None:
        """The fault a drill declares: the text of `fault_file` while it exists (a driver's
        error, a hardware e-stop), cleared when it is removed."""
        if self.fault_file is None or not self.fault_file.exists():
            return None
        return f"fault drill: {self.fault_file.read_text().strip() or self.fault_file}"

    def health(self) -> Health:
        if self.model is None:
            return Health(HealthStatus.DISCONNECTED, "not connected")
        fault = self._fault or self._drill()
        if fault is not None:
            return Health(HealthStatus.FAULT, fault)
        return Health(HealthStatus.OK)

    # -- rendering -------------------------------------------------------------------------------
    def render_state(self, obs: Observation, camera: str, height: int, width: int) -> np.ndarray:
        """Re-create the scene from a recorded observation and render it (for replays)."""
        m, d = self._require()
        d.qpos[self._qadr] = obs["joint_pos"]
        d.qpos[self._grip_q] = self.arm.qpos_for_opening(float(obs["gripper"][0]))
        self.task.restore(m, d, obs)
        mujoco.mj_forward(m, d)
        return self.render(camera, height, width)

    def render(self, camera: str = "side_cam", height: int = 128, width: int = 128) -> np.ndarray:
        """An RGB uint8 image from a named camera of the scene."""
        m, d = self._require()
        renderer = self._renderers.get((height, width))
        if renderer is None:
            renderer = self._renderers[(height, width)] = mujoco.Renderer(m, height, width)
            _track_renderer(self)
        renderer.update_scene(d, camera=CAMERAS.get(camera, camera))
        return renderer.render()
