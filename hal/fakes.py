"""In-package hardware fakes for tests: a point-mass 'arm' with the Δ-EE action layout, and a
teleop that replays a script of commands."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hal.robot import Health, HealthStatus, Robot
from hal.teleop import Teleop, TeleopCommand
from robot_rl.core import ArraySpec, DictSpec, HardwareError, Observation


class PointRobot(Robot):
    """An end effector that moves by `action[:3] * scale` metres per step; can be made to fault."""

    def __init__(self, robot_id: str = "fake0", scale: float = 0.05) -> None:
        self.robot_id = robot_id
        self.scale = scale
        self.connected = False
        self.position = np.zeros(3)
        self.applied: list[np.ndarray] = []
        self.fault: str | None = None
        self.scene_problem: str | None = None  # set: the scene needs a person to reset it

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    @property
    def observation_spec(self) -> DictSpec:
        return DictSpec({"ee_pos": ArraySpec((3,), "float32")})

    @property
    def action_spec(self) -> ArraySpec:
        return ArraySpec((5,), "float32", -1.0, 1.0)

    def get_observation(self) -> Observation:
        if not self.connected:
            raise HardwareError(f"{self.robot_id} is unplugged: connect it first")
        return {"ee_pos": self.position.astype(np.float32)}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        if not self.connected:
            raise HardwareError(f"{self.robot_id} is unplugged: connect it first")
        applied = np.asarray(action, dtype=np.float32)
        self.position = self.position + applied[:3] * self.scale
        self.applied.append(applied)
        return applied

    def reset(self) -> Observation:
        self.position = np.zeros(3)
        return self.get_observation()

    def health(self) -> Health:
        if not self.connected:
            return Health(HealthStatus.DISCONNECTED, "not connected")
        if self.fault:
            return Health(HealthStatus.FAULT, self.fault)
        if self.scene_problem:
            return Health(HealthStatus.RESET_NEEDED, self.scene_problem)
        return Health(HealthStatus.OK)


class ReplayTeleop(Teleop):
    """Gives `commands` one per read, then None: takeovers, labels and e-stop, scripted."""

    def __init__(self, commands: Sequence[TeleopCommand | None]) -> None:
        self.commands = list(commands)
        self.reads = 0

    def read(self) -> TeleopCommand | None:
        self.reads += 1
        return self.commands.pop(0) if self.commands else None
