"""The algorithm registry: `@ALGORITHMS.register(name)`, plus the `robot_rl.algorithms` group."""

from __future__ import annotations

from robot_rl.core import Registry

ALGORITHMS: Registry[type] = Registry("algorithm", entry_point_group="robot_rl.algorithms")
