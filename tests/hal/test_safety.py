import threading
import time

import numpy as np
import pytest

from hal import HealthStatus, SafeRobot, SafetyLimits
from hal.fakes import PointRobot
from robot_rl.core import HardwareError, SafetyError


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
