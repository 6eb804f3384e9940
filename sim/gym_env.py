"""The sim tasks as gymnasium environments: `gymnasium.make("robot_rl/PickCube-v0")`.

Registered when `sim` is imported. Each env drives a `MujocoArm` through the same safety layer
as a session does, and reports `info["is_success"]` from the task's success detector every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from hal.safety import SafeRobot, SafetyLimits
from robot_rl.core import ArraySpec, DictSpec, Observation
from sim.arm import MujocoArm
from sim.randomization import RandomizationConfig
from sim.tasks.registry import TASKS

ENV_IDS = {
    "robot_rl/Reach-v0": "reach",
    "robot_rl/Push-v0": "push",
    "robot_rl/PickCube-v0": "pick_cube",
    "robot_rl/PegInsertion-v0": "peg_insertion",
}


def _box(spec: ArraySpec) -> gym.spaces.Box:
    low = -np.inf if spec.low is None else spec.low
    high = np.inf if spec.high is None else spec.high
    return gym.spaces.Box(low, high, spec.shape, np.dtype(spec.dtype))


def observation_space(spec: DictSpec) -> gym.spaces.Dict:
    return gym.spaces.Dict({key: _box(s) for key, s in spec.items()})


class SimArmEnv(gym.Env[Observation, np.ndarray]):
    """One sim task on one arm; `reward` is "dense" or "sparse", the rest is as in `MujocoArm`."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str,
        *,
        reward: str = "dense",
        arm: str = "small_arm",
        cameras: Sequence[str] = (),
        image_size: int = 128,
        randomize: bool = False,
        render_mode: str | None = None,
        **task_params: Any,
    ) -> None:
        if reward not in ("dense", "sparse"):
            raise ValueError(f"reward must be 'dense' or 'sparse', got {reward!r}")
        self.task = TASKS.get(task)(**task_params)
        self.reward_kind = reward
        self.render_mode = render_mode
        self.arm = MujocoArm(self.task, arm=arm, cameras=cameras, image_size=image_size,
                             randomize=RandomizationConfig() if randomize else None)
        self.robot = SafeRobot(self.arm, SafetyLimits(translation_scale=self.arm.translation_scale))
        self.observation_space = observation_space(self.arm.observation_spec)
        self.action_space = _box(self.arm.action_spec)
        self._steps = 0
        self.robot.connect()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.arm.seed(seed)
        self._steps = 0
        obs = self.robot.reset()
        return obs, {"is_success": self.arm.outcome().success}

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        applied = self.robot.send_action(action)
        self._steps += 1
        obs = self.robot.get_observation()
        outcome = self.arm.outcome()
        health = self.robot.health()
        truncated = self._steps >= self.task.max_steps or not health.ok
        info = {"is_success": outcome.success, "applied_action": applied,
                "health": health.status.value}
        return obs, outcome.reward(self.reward_kind), outcome.success, truncated, info

    def render(self) -> np.ndarray:
        return self.arm.render("side_cam", 256, 256)

    def close(self) -> None:
        self.robot.disconnect()


def register_envs() -> None:
    """Register every built-in task with gymnasium (idempotent)."""
    for env_id, task in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="sim.gym_env:SimArmEnv", kwargs={"task": task})


register_envs()
