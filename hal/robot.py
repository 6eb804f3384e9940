"""The Robot interface: one contract for real arms, ROS 2 arms and MuJoCo arms alike."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from robot_rl.core import ArraySpec, DictSpec, Observation


class HealthStatus(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    FAULT = "fault"
    DISCONNECTED = "disconnected"
    RESET_NEEDED = "reset_needed"  # the scene needs a person (e.g. the object left the table)


@dataclass(frozen=True)
class Health:
    """What a device says about itself; anything but OK keeps the robot in safe hold."""

    status: HealthStatus
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status is HealthStatus.OK


class Robot(ABC):
    """An arm that yields observations and applies actions at its control rate."""

    robot_id: str = "robot0"

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    @property
    @abstractmethod
    def observation_spec(self) -> DictSpec: ...

    @property
    @abstractmethod
    def action_spec(self) -> ArraySpec: ...

    @abstractmethod
    def get_observation(self) -> Observation: ...

    @abstractmethod
    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Apply one control step; return the action really applied."""

    @abstractmethod
    def reset(self) -> Observation: ...

    @abstractmethod
    def health(self) -> Health: ...

    def hold_action(self) -> np.ndarray:
        """The action that keeps the arm where it is (zero delta for Δ-EE control)."""
        return self.action_spec.zeros()

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
