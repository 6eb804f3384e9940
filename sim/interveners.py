"""Scripted stand-ins for a person at the teleop: an expert that takes over now and then.

A `ScriptedIntervener` IS a hal.Teleop: the session reads it every step exactly as it reads a
SpaceMouse, and when it takes over its action replaces the policy's (flagged `intervened`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hal.robot import Robot
from hal.teleop import TELEOPS, Teleop, TeleopCommand
from robot_rl.core import ConfigError
from sim.arm import MujocoArm
from sim.experts import EXPERTS, Expert


@TELEOPS.register("scripted")
class ScriptedIntervener(Teleop):
    """Takes over for `window` steps with probability `start_prob` per step, until `budget`.

    The `expert` (one of `sim.experts`) plans from the true state of the arm it drives.
    `budget` caps the total intervened steps, so interventions fade out as a person's would.
    """

    def __init__(self, expert: Expert, *, start_prob: float = 0.05, window: int = 10,
                 budget: int = 2000, seed: int = 0) -> None:
        self.expert = expert
        self.start_prob, self.window, self.budget = start_prob, window, budget
        self.rng = np.random.default_rng(seed)
        self.remaining = 0
        self.used = 0

    @classmethod
    def for_robot(cls, robot: Robot, seed: int, **params: Any) -> ScriptedIntervener:
        """The task's own expert (`sim.experts`) on a sim arm, seeded by the session."""
        if not isinstance(robot, MujocoArm):
            raise ConfigError("teleop=scripted plans from a sim arm's true state; a real robot "
                              "needs a person: use teleop=keyboard")
        return cls(EXPERTS.get(robot.task.name)(robot, seed=seed), seed=seed, **params)

    def read(self) -> TeleopCommand | None:
        if self.remaining == 0 and self.used < self.budget and self.rng.random() < self.start_prob:
            self.remaining = self.window
        if self.remaining == 0 or self.used >= self.budget:
            return None
        self.remaining -= 1
        self.used += 1
        return TeleopCommand(action=self.expert.act(), takeover=True)
