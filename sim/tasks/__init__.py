"""Sim tasks; importing this package registers the built-in ones."""

from sim.tasks.base import Task, TaskOutcome
from sim.tasks.peg_insertion import PegInsertionTask
from sim.tasks.pick_cube import PickCubeTask
from sim.tasks.push import PushTask
from sim.tasks.reach import ReachTask
from sim.tasks.registry import TASKS

__all__ = [
    "TASKS", "PegInsertionTask", "PickCubeTask", "PushTask", "ReachTask", "Task", "TaskOutcome",
]
