"""The sim arm behind the safety layer: bad actions are counted, instability faults and holds."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hal import HealthStatus, SafeRobot, SafetyLimits


@pytest.fixture
def safe(make_arm):
    arm = make_arm("push")
    return arm, SafeRobot(arm, SafetyLimits(translation_scale=arm.translation_scale))


def test_invalid_actions_are_rejected_or_clipped_and_counted(safe, caplog):
    arm, robot = safe
    robot.get_observation()
    start = arm.ee_pos()
    with caplog.at_level(logging.WARNING, logger="hal.safety"):
        held = robot.send_action(np.array([np.nan, 0, 0, 0, 0], np.float32))
        wrong = robot.send_action(np.zeros(3, np.float32))
    np.testing.assert_array_equal(held, arm.hold_action())
    np.testing.assert_array_equal(wrong, arm.hold_action())
    assert robot.events["rejected"] == 2
    assert np.linalg.norm(arm.ee_pos() - start) < 0.01  # held in place, not moved
    applied = robot.send_action(np.array([5.0, 0, 0, 0, 0], np.float32))
    assert applied[0] == pytest.approx(1.0)
    assert robot.events["clipped"] == 1
    assert "rejected" in caplog.text


def test_instability_faults_holds_and_recovers_on_reset(safe, caplog):
    arm, robot = safe
    arm.data.qvel[:] = 1e12  # MuJoCo flags this as bad velocities and resets the state itself
    with caplog.at_level(logging.ERROR, logger="sim.arm"):
        robot.send_action(np.zeros(5, np.float32))
    health = robot.health()
    assert health.status is HealthStatus.FAULT and "unstable" in health.message
    assert "reset required" in caplog.text
    frozen = arm.data.qpos.copy()
    applied = robot.send_action(np.array([1.0, 1.0, 1.0, 0, 1.0], np.float32))
    np.testing.assert_array_equal(applied, arm.hold_action())  # safe hold
    np.testing.assert_array_equal(arm.data.qpos, frozen)  # physics does not advance
    assert robot.events["hold"] >= 1
    obs = robot.reset()
    assert robot.health().ok
    arm.observation_spec.validate(obs)
    robot.send_action(np.array([0.5, 0, 0, 0, 0], np.float32))
    assert robot.health().ok
