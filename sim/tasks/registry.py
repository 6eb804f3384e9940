"""The task registry: `@TASKS.register(name)`, plus the `robot_rl.tasks` entry-point group."""

from __future__ import annotations

from robot_rl.core import Registry

TASKS: Registry[type] = Registry("task", entry_point_group="robot_rl.tasks")
