"""Hardware: the Robot / Teleop / Camera interfaces, the safety layer and drivers."""

from hal.keyboard import KeyboardTeleop
from hal.outcome import TaskOutcome, TaskOutcomeSource, task_outcomes
from hal.robot import Health, HealthStatus, Robot
from hal.safety import SafeRobot, SafetyLimits
from hal.teleop import ESTOP, TELEOPS, Camera, Teleop, TeleopCommand

__all__ = [
    "ESTOP", "TELEOPS", "Camera", "Health", "HealthStatus", "KeyboardTeleop", "Robot", "SafeRobot",
    "SafetyLimits", "TaskOutcome", "TaskOutcomeSource", "Teleop", "TeleopCommand",
    "task_outcomes",
]
