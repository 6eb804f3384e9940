"""The robot registry: every kind of robot a session can drive, by the name `robot=<name>` picks.

A kind turns the keys of its config section into a `Robot`. Kinds register with
`@ROBOTS.register(name)` or under the entry-point group `robot_rl.robots` of their own package
(the sim arms register that way, so hal never imports sim; a vendor's driver does the same).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from hal.robot import Robot
from hal.units import Unit
from robot_rl.core import Registry


@dataclass(frozen=True)
class RobotSetup:
    """What every robot is built with, whatever its kind: the common keys of `robot:`."""

    robot_id: str
    control_hz: float
    translation_scale: float  # metres per unit of a Δ end-effector action
    seed: int = 0
    scene: Any = None
    """The task a simulating kind builds its scene for (a sim task object); None for hardware."""


class RobotKind(ABC):
    """How `robot=<name>` becomes a Robot: the schema of its own keys, its units, its build."""

    settings: ClassVar[type]
    """A dataclass of the kind's own keys of `robot:` (every field with a default)."""
    unit_type: ClassVar[str]
    """The inventory type of the units it drives (a checker's `type`)."""
    simulated: ClassVar[bool] = False
    """True for a kind that simulates the task's scene, so it needs a sim task; False for a
    kind that drives hardware, which a sim task's scene and rule cannot describe."""

    @classmethod
    @abstractmethod
    def unit(cls, settings: Any, setup: RobotSetup) -> str:
        """The inventory unit a robot with these settings runs on (what placement checks)."""

    @classmethod
    def for_unit(cls, settings: Any, unit: Unit) -> Any:
        """These settings for a robot placed on `unit` (a sim arm's model, ...); default as is."""
        return settings

    @classmethod
    @abstractmethod
    def build(cls, settings: Any, setup: RobotSetup) -> Robot:
        """The robot, not yet connected; HardwareError or ConfigError naming what is wrong."""


ROBOTS: Registry[type[RobotKind]] = Registry("robot", entry_point_group="robot_rl.robots")
"""Robot kinds by the name `robot=<name>` selects."""
