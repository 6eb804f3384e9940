"""Hardware: the Robot / Teleop / Camera interfaces, the safety layer and drivers."""

from hal.robot import Health, HealthStatus, Robot
from hal.safety import SafeRobot, SafetyLimits
from hal.teleop import Camera, Teleop, TeleopCommand

__all__ = [
    "Camera", "Health", "HealthStatus", "Robot", "SafeRobot", "SafetyLimits", "Teleop",
    "TeleopCommand",
]
