"""Hardware: Robot / Teleop / Camera interfaces, the robot registry, safety, teleop devices,
discovery, placement and leases."""

from hal.gamepad import GamepadTeleop
from hal.keyboard import KeyboardTeleop
from hal.outcome import TaskOutcome, TaskOutcomeSource, task_outcomes
from hal.robot import Health, HealthStatus, Robot
from hal.robots import ROBOTS, RobotKind, RobotSetup
from hal.safety import SafeRobot, SafetyLimits
from hal.spacemouse import SpaceMouseTeleop
from hal.teleop import ESTOP, TELEOPS, Camera, Teleop, TeleopCommand

__all__ = [
    "ESTOP", "ROBOTS", "TELEOPS", "Camera", "GamepadTeleop", "Health", "HealthStatus",
    "KeyboardTeleop", "Robot", "RobotKind", "RobotSetup", "SafeRobot", "SafetyLimits",
    "SpaceMouseTeleop", "TaskOutcome", "TaskOutcomeSource", "Teleop", "TeleopCommand",
    "task_outcomes",
]
