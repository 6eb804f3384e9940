"""The safety layer's joint limits on a sim arm, which reports its joints as a real one would."""

from __future__ import annotations

import numpy as np

from hal import SafeRobot, SafetyLimits


def test_a_sim_arm_turned_into_its_base_yaw_limit_is_held_there(make_arm):
    arm = make_arm("reach")
    limits = SafetyLimits(translation_scale=arm.translation_scale,
                          joint_low=(-0.2, -3.0, -3.0, -3.0, -3.0),
                          joint_high=(0.2, 3.0, 3.0, 3.0, 3.0))
    safe = SafeRobot(arm, limits)
    safe.reset()
    sideways = np.array([0.0, 1.0, 0.0, 0.0, 0.0], np.float32)  # +y turns the base yaw joint
    for _ in range(40):
        safe.get_observation()
        safe.send_action(sideways)
        if safe.events["joint_limit"]:
            break
    assert safe.events["joint_limit"] == 1
    held_at = safe.get_observation()["joint_pos"].copy()
    assert held_at[0] > 0.2
    for _ in range(5):
        np.testing.assert_array_equal(safe.send_action(sideways), arm.hold_action())
        safe.get_observation()
    assert safe.events["joint_limit"] == 6
    assert abs(safe.get_observation()["joint_pos"][0] - held_at[0]) < 0.05
