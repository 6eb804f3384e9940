"""Scripted experts for every built-in task; importing this package registers them."""

from sim.experts.base import EXPERTS, Expert, success_rate
from sim.experts.scripts import PegInsertionExpert, PickCubeExpert, PushExpert, ReachExpert

__all__ = [
    "EXPERTS", "Expert", "PegInsertionExpert", "PickCubeExpert", "PushExpert", "ReachExpert",
    "success_rate",
]
