"""Hardware: Robot / Teleop / Camera interfaces, safety, teleop devices, discovery and leases."""

from hal.gamepad import GamepadTeleop
from hal.keyboard import KeyboardTeleop
from hal.outcome import TaskOutcome, TaskOutcomeSource, task_outcomes
from hal.robot import Health, HealthStatus, Robot
from hal.safety import SafeRobot, SafetyLimits
from hal.spacemouse import SpaceMouseTeleop
from hal.teleop import ESTOP, TELEOPS, Camera, Teleop, TeleopCommand

__all__ = [
    "ESTOP", "TELEOPS", "Camera", "GamepadTeleop", "Health", "HealthStatus", "KeyboardTeleop",
    "Robot", "SafeRobot", "SafetyLimits", "SpaceMouseTeleop", "TaskOutcome", "TaskOutcomeSource",
    "Teleop", "TeleopCommand", "task_outcomes",
]
