"""Scripted experts: noisy, imperfect on purpose, with a tunable skill level."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from robot_rl.core import Registry
from sim.arm import MujocoArm

EXPERTS: Registry[type[Expert]] = Registry("expert", entry_point_group="robot_rl.experts")


class Expert(ABC):
    """Drives a sim arm from the true task state, like a person who knows the task.

    `skill` in [0, 1]: at 1 the expert acts exactly as planned; below 1 it adds Gaussian noise
    of std `0.6 * (1 - skill)` and, with probability `0.2 * (1 - skill)`, a random action.
    `miss` > 0 makes a near-miss on purpose: the expert aims at a point `miss` metres from the
    goal, in a direction drawn anew each episode, and fails close to success; such failures are
    the negatives a success classifier must see to learn where success ends.
    """

    def __init__(self, arm: MujocoArm, skill: float = 1.0, seed: int = 0,
                 miss: float = 0.0) -> None:
        if not 0.0 <= skill <= 1.0:
            raise ValueError(f"expert skill must be in [0, 1], got {skill}")
        if miss < 0.0:
            raise ValueError(f"expert miss must be a distance >= 0 in metres, got {miss}")
        self.arm = arm
        self.skill = skill
        self.miss = miss
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Forget the previous episode (call after the arm's reset)."""
        self.phase = "start"
        self.offset = np.zeros(3)
        if self.miss > 0.0:
            direction = self.rng.normal(size=3)
            self.offset = self.miss * direction / np.linalg.norm(direction)

    def aim(self, goal: np.ndarray) -> np.ndarray:
        """Where the expert steers for `goal`: the goal itself, or the near-miss point."""
        return np.asarray(goal) + self.offset[:len(goal)]

    def act(self) -> np.ndarray:
        """The next action in [-1, 1], planned from the current state, then degraded by skill."""
        action = self.plan()
        clumsiness = 1.0 - self.skill
        if clumsiness > 0:
            action = action + self.rng.normal(0.0, 0.6 * clumsiness, action.shape)
            if self.rng.random() < 0.2 * clumsiness:
                action = self.rng.uniform(-1.0, 1.0, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    @abstractmethod
    def plan(self) -> np.ndarray: ...

    # -- helpers ---------------------------------------------------------------------------------
    def toward(self, target: np.ndarray, gain: float = 1.0) -> np.ndarray:
        """Translation action that moves the pinch point toward `target` (clipped to [-1, 1])."""
        delta = (np.asarray(target) - self.arm.ee_pos()) / self.arm.translation_scale
        return np.clip(gain * delta, -1.0, 1.0)

    def turn_toward(self, yaw_error: float) -> float:
        return float(np.clip(yaw_error / self.arm.yaw_scale, -1.0, 1.0))

    def command(self, move: np.ndarray, yaw: float, gripper: float) -> np.ndarray:
        return np.array([*move, yaw, gripper], dtype=np.float64)


def success_rate(expert: Expert, episodes: int) -> float:
    """The share of `episodes` fresh episodes of its arm that `expert` finishes successfully."""
    arm, wins = expert.arm, 0
    for _ in range(episodes):
        arm.reset()
        expert.reset()
        for _ in range(arm.task.max_steps):
            arm.send_action(expert.act())
            if arm.outcome().success:
                wins += 1
                break
    return wins / episodes
