"""Teleop and camera interfaces: a human source of actions and labels, and an image source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hal.robot import Robot
from robot_rl.core import Registry

ESTOP = "estop"
"""The button that engages the e-stop: the session holds the robot and stops."""


@dataclass(frozen=True)
class TeleopCommand:
    """One reading of a teleop device. `takeover` means the human's action replaces the policy's."""

    action: np.ndarray | None
    takeover: bool
    buttons: frozenset[str] = field(default_factory=frozenset)
    label: bool | None = None  # True = success, False = failure, None = no label


class Teleop(ABC):
    """A keyboard, gamepad, SpaceMouse, leader arm or web page that a person drives."""

    realtime: bool = False
    """True where a person drives it: loops that read it keep real time at robot.control_hz."""

    @classmethod
    def for_robot(cls, robot: Robot, seed: int, **params: Any) -> Teleop:
        """The device set up for `robot` with the config's `teleop.params` (`teleop=<name>`)."""
        return cls(**params)

    @classmethod
    def unit_name(cls, **params: Any) -> str | None:
        """The inventory unit this device needs with these `teleop.params` (None: no hardware)."""
        return None

    @abstractmethod
    def read(self) -> TeleopCommand | None:
        """The latest command, or None when the device has nothing new."""

    def close(self) -> None:  # noqa: B027 - a device that holds nothing has nothing to release
        """Release what the device holds (a terminal's mode, a reader thread)."""


TELEOPS: Registry[type[Teleop]] = Registry("teleop")
"""Teleop devices by the name `teleop=<name>` selects."""


class Camera(ABC):
    """A camera that returns the latest frame as uint8 HxWx3."""

    @abstractmethod
    def read(self) -> np.ndarray: ...
