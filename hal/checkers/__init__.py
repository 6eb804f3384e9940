"""The built-in checkers; importing this package registers them in `hal.checker.CHECKERS`."""

from hal.checkers.accelerator import AcceleratorChecker
from hal.checkers.camera import CameraChecker
from hal.checkers.input_devices import InputDeviceChecker
from hal.checkers.network import NetworkRobotChecker

__all__ = ["AcceleratorChecker", "CameraChecker", "InputDeviceChecker", "NetworkRobotChecker"]
