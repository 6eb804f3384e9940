"""Robots of other makes mapped onto one learner's observation, or refused naming the keys."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.config import compose_session
from robot_rl.core import ArraySpec, ConfigError, DictSpec
from robot_rl.runtime.adapter import ObservationAdapter
from robot_rl.runtime.build import session_specs
from robot_rl.runtime.ray.session import open_robot_devices

LEARNER = DictSpec({"ee_pos": ArraySpec((3,), "float32"), "cam": ArraySpec((8, 8, 3), "uint8")})
ACTION = ArraySpec((5,), "float32", -1, 1)


def test_renamed_and_dropped_keys_give_the_learner_exactly_its_observation() -> None:
    robot = DictSpec({"ee_pos": ArraySpec((3,), "float32"),
                      "front": ArraySpec((8, 8, 3), "uint8"), "torque": ArraySpec((6,), "f4")})
    adapter = ObservationAdapter("b", robot, {"cam": "front"}, ["torque"])
    adapter.check(LEARNER, ACTION, ACTION)
    obs = {"ee_pos": np.ones(3, np.float32), "front": np.zeros((8, 8, 3), np.uint8),
           "torque": np.zeros(6, np.float32)}
    assert set(adapter(obs)) == {"ee_pos", "cam"} and adapter(obs)["cam"] is obs["front"]


def test_a_robot_that_does_not_fit_is_refused_naming_the_keys() -> None:
    robot = DictSpec({"ee_pos": ArraySpec((2,), "float32"), "torque": ArraySpec((6,), "f4")})
    adapter = ObservationAdapter("b", robot, {}, [])
    with pytest.raises(ConfigError, match=r"lacks \['cam'\], has \['torque'\] .* gives "
                                          r"\['ee_pos'\] in other shapes; map them with "
                                          r"robots.b.adapter"):
        adapter.check(LEARNER, ACTION, ACTION)
    with pytest.raises(ConfigError, match=r"adapter names \['wheel'\]"):
        ObservationAdapter("b", robot, {"cam": "wheel"}, [])


def test_two_makes_of_arm_one_learner_checked_before_the_session_starts() -> None:
    mixed = "robots={a: {}, b: {arm: so101, cameras: [wrist_cam], image_size: 16}}"
    cfg = compose_session([mixed])
    learner = session_specs(cfg)  # the first robot's: no cameras
    assert "wrist_cam" not in learner[0]
    from robot_rl.runtime.build import session_robots

    robots = session_robots(cfg)
    with pytest.raises(ConfigError, match=r"robot b .* has \['wrist_cam'\]"):
        open_robot_devices(robots["b"], learner)
    fixed = session_robots(compose_session(
        ["robots={a: {}, b: {arm: so101, cameras: [wrist_cam], image_size: 16, "
         "adapter: {drop: [wrist_cam]}}}"]))
    assert open_robot_devices(fixed["b"], learner) is None  # fits; no device to keep open
