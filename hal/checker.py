"""The checker interface: one small plug-in per hardware type finds its units and checks them."""

from __future__ import annotations

from abc import ABC, abstractmethod

from hal.robot import Health
from hal.units import Node, Unit
from robot_rl.core import Registry


class Checker(ABC):
    """Finds the units of one hardware `type` on a node and says whether each is usable.

    Both calls run under `timeout_s` on their own thread; a probe that raises or overruns marks
    its unit unhealthy with the reason, so discovery never hangs on a dead device.
    """

    type: str
    timeout_s: float = 2.0

    @abstractmethod
    def discover(self, node: Node) -> list[Unit]:
        """The units of this type on `node` (found by probing, or declared in its hardware file)."""

    @abstractmethod
    def validate(self, unit: Unit) -> Health:
        """Whether `unit` is usable now; raising HardwareError means unhealthy for that reason."""


CHECKERS: Registry[type[Checker]] = Registry("hardware checker",
                                             entry_point_group="robot_rl.checkers")
"""Checkers by hardware type; a third-party package adds one through that entry-point group."""
