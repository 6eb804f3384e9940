import threading
import time

import numpy as np
import pytest

from hal import HealthStatus, SafeRobot, SafetyLimits
from hal.fakes import PointRobot
from robot_rl.core import ConfigError, HardwareError, SafetyError


@pytest.fixture
def robot():
    inner = PointRobot(scale=0.05)
    safe = SafeRobot(inner, SafetyLimits(workspace_low=(-0.1, -0.1, 0.0),
                                         workspace_high=(0.1, 0.1, 0.2), translation_scale=0.05))
    safe.connect()
    safe.reset()
    return inner, safe


@pytest.mark.parametrize("bad", [np.array([np.nan, 0, 0, 0, 0]), np.zeros(3), "left", None])
def test_malformed_actions_are_replaced_by_a_hold_and_counted(robot, bad):
    inner, safe = robot
    applied = safe.send_action(bad)
    np.testing.assert_array_equal(applied, np.zeros(5))
    assert safe.events["rejected"] == 1
    np.testing.assert_array_equal(inner.position, np.zeros(3))


def test_out_of_range_actions_are_clipped_and_counted(robot):
    inner, safe = robot
    applied = safe.send_action(np.array([0.5, 0, 3.0, 0, -7.0]))
    np.testing.assert_allclose(applied, [0.5, 0, 1.0, 0, -1.0])
    assert safe.events["clipped"] == 1


def test_the_workspace_box_stops_the_end_effector_at_its_wall(robot):
    inner, safe = robot
    for _ in range(10):
        safe.send_action(np.array([1.0, 0, 0, 0, 0]))
        safe.get_observation()
    assert inner.position[0] == pytest.approx(0.1)
    assert safe.events["workspace"] >= 1


def test_estop_holds_until_released_and_blocks_reset(robot):
    inner, safe = robot
    safe.estop("operator pressed e-stop")
    assert safe.health().status is HealthStatus.FAULT
    np.testing.assert_array_equal(safe.send_action(np.array([1.0, 1, 1, 0, 0])), np.zeros(5))
    with pytest.raises(SafetyError, match="e-stop is engaged"):
        safe.reset()
    safe.release()
    safe.send_action(np.array([1.0, 0, 0, 0, 0]))
    assert inner.position[0] == pytest.approx(0.05)


def test_a_faulted_robot_gets_only_hold_actions(robot):
    inner, safe = robot
    inner.fault = "joint 3 over temperature"
    applied = safe.send_action(np.array([1.0, 0, 0, 0, 0]))
    np.testing.assert_array_equal(applied, np.zeros(5))
    assert safe.events["hold"] == 1


def test_an_unplugged_robot_raises_a_clear_error():
    robot = PointRobot("arm7")
    with pytest.raises(HardwareError, match="arm7 is unplugged"):
        robot.get_observation()


def test_reset_waits_for_a_person_when_the_scene_needs_one(robot):
    inner, safe = robot
    safe.reset_poll_s = 0.05
    inner.scene_problem = "the cube fell off the table"
    started = time.monotonic()  # before the timer: it counts its 0.3 s from its own start
    threading.Timer(0.3, lambda: setattr(inner, "scene_problem", None)).start()
    obs = safe.reset()
    assert time.monotonic() - started >= 0.3
    assert safe.events["reset_needed"] == 1
    np.testing.assert_array_equal(obs["ee_pos"], np.zeros(3))
    assert inner.applied == []  # nothing moved while waiting


def test_reset_gives_up_with_a_clear_error_when_nobody_comes(robot):
    inner, safe = robot
    safe.reset_wait_s, safe.reset_poll_s = 0.2, 0.05
    inner.scene_problem = "the peg is stuck in the hole"
    with pytest.raises(HardwareError, match="still needs a person to reset it .the peg is stuck"):
        safe.reset()
    assert safe.health().status is HealthStatus.RESET_NEEDED


def test_the_speed_limit_shortens_a_step_keeping_its_direction_and_counts_it():
    inner = PointRobot(scale=0.05)
    safe = SafeRobot(inner, SafetyLimits(max_speed=0.25, control_hz=10.0))  # 0.025 m per step
    safe.connect()
    safe.reset()
    applied = safe.send_action(np.array([1.0, 1.0, 0, 0.3, 1.0]))
    step = np.asarray(applied[:3], dtype=np.float64) * 0.05
    assert np.linalg.norm(step) == pytest.approx(0.025, rel=1e-5)
    assert applied[0] == pytest.approx(applied[1]) and applied[2] == 0
    np.testing.assert_allclose(applied[3:], [0.3, 1.0])  # yaw and gripper untouched
    safe.send_action(np.array([0.1, 0, 0, 0, 0]))  # 0.05 m/s: within the limit
    assert safe.events["speed"] == 1


def joint_robot(**limits):
    inner = PointRobot(joints=3)
    safe = SafeRobot(inner, SafetyLimits(**limits))
    safe.connect()
    safe.reset()
    return inner, safe


def test_a_joint_beyond_its_limit_gets_holds_until_it_is_back():
    inner, safe = joint_robot(joint_low=(-1.0, -1.0, -1.0), joint_high=(1.0, 1.0, 1.0))
    step = np.array([1.0, 0, 0, 0, 0])
    np.testing.assert_allclose(safe.send_action(step), step)
    inner.joint_pos[2] = 1.2
    safe.get_observation()
    np.testing.assert_array_equal(safe.send_action(step), np.zeros(5))
    assert safe.events["joint_limit"] == 1
    inner.joint_pos[2] = 0.5
    safe.get_observation()
    np.testing.assert_allclose(safe.send_action(step), step)


def test_a_joint_moving_too_fast_gets_a_hold():
    inner, safe = joint_robot(max_joint_velocity=2.0)
    inner.joint_vel[:] = [0.1, -2.5, 0.0]
    safe.get_observation()
    np.testing.assert_array_equal(safe.send_action(np.array([1.0, 0, 0, 0, 0])), np.zeros(5))
    assert safe.events["joint_velocity"] == 1


@pytest.mark.parametrize("limits, problem", [
    ({"joint_low": (-1.0,) * 3}, "reports no `joint_pos`"),
    ({"max_joint_velocity": 1.0}, "reports no `joint_vel`"),
])
def test_joint_limits_on_a_robot_without_joints_are_a_config_error(limits, problem):
    with pytest.raises(ConfigError, match=problem):
        SafeRobot(PointRobot(), SafetyLimits(**limits))


def test_joint_limits_need_one_bound_per_joint():
    with pytest.raises(ConfigError, match="joint_high has 2 values; fake0 has 3 joints"):
        SafeRobot(PointRobot(joints=3), SafetyLimits(joint_high=(1.0, 1.0)))
