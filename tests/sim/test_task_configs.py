"""Each task's launch config composes into a robot a session can drive."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.config import compose_session
from robot_rl.runtime.build import build_robot


@pytest.mark.parametrize("task", ["push", "pick_cube", "peg_insertion", "pick_cube_pixels"])
def test_task_config_builds_a_steppable_robot(task):
    cfg = compose_session([f"task={task}", "robot.image_size=32"])
    arm, robot = build_robot(cfg)
    robot.connect()
    try:
        assert arm.task.max_steps == cfg.task.max_steps
        obs = robot.reset()
        robot.observation_spec.validate(obs)
        robot.send_action(np.zeros(5, np.float32))
        robot.observation_spec.validate(robot.get_observation())
        assert arm.outcome().reward(cfg.task.reward) is not None
    finally:
        robot.disconnect()


def test_pixel_variant_has_images_and_no_object_state():
    cfg = compose_session(["task=pick_cube_pixels"])
    arm, _ = build_robot(cfg)
    spec = arm.observation_spec
    assert spec["wrist_cam"].shape == (128, 128, 3) and spec["side_cam"].dtype == "uint8"
    assert "object_pos" not in spec and cfg.task.reward == "sparse"
    assert arm.randomize is not None


def test_default_reach_stays_state_only():
    arm, _ = build_robot(compose_session([]))
    assert all(len(s.shape) == 1 for _, s in arm.observation_spec.items())
    assert arm.randomize is None and arm.arm.name == "small_arm"
