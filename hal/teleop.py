"""Teleop and camera interfaces: a human source of actions and labels, and an image source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TeleopCommand:
    """One reading of a teleop device. `takeover` means the human's action replaces the policy's."""

    action: np.ndarray | None
    takeover: bool
    buttons: frozenset[str] = field(default_factory=frozenset)
    label: bool | None = None  # True = success, False = failure, None = no label


class Teleop(ABC):
    """A keyboard, gamepad, SpaceMouse, leader arm or web page that a person drives."""

    @abstractmethod
    def read(self) -> TeleopCommand | None:
        """The latest command, or None when the device has nothing new."""


class Camera(ABC):
    """A camera that returns the latest frame as uint8 HxWx3."""

    @abstractmethod
    def read(self) -> np.ndarray: ...
