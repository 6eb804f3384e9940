"""Sim fixtures: connected arms are shared per module because compiling a scene takes time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim import TASKS, MujocoArm


@pytest.fixture
def make_arm() -> Iterator:
    """Factory for connected arms that are all disconnected at the end of the test."""
    arms: list[MujocoArm] = []

    def make(task: str = "pick_cube", task_params: dict | None = None, **kwargs) -> MujocoArm:
        arm = MujocoArm(TASKS.get(task)(**(task_params or {})), **kwargs)
        arm.connect()
        arms.append(arm)
        return arm

    yield make
    for arm in arms:
        arm.disconnect()
