"""Sim tasks; importing this package registers the built-in ones."""

from sim.tasks.base import Task, TaskOutcome
from sim.tasks.reach import ReachTask
from sim.tasks.registry import TASKS

__all__ = ["TASKS", "ReachTask", "Task", "TaskOutcome"]
