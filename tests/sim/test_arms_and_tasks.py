"""Every arm does every task: observations match their spec, resets and seeds repeat."""

from __future__ import annotations

import numpy as np
import pytest

from hal import HealthStatus
from robot_rl.core import HardwareError, RegistryError
from sim import ARMS, TASKS, MujocoArm, RandomizationConfig, TaskOutcome

PAIRS = [(arm, task) for arm in ARMS.names() for task in TASKS.names()]
CAMERAS = ["wrist_cam", "side_cam"]


def test_registries_hold_the_built_ins() -> None:
    assert {"small_arm", "so101"} <= set(ARMS.names())
    assert {"reach", "push", "pick_cube", "peg_insertion"} <= set(TASKS.names())


@pytest.mark.parametrize(("arm_name", "task"), PAIRS)
def test_every_robot_task_pair_steps_with_conforming_observations(make_arm, arm_name, task):
    arm = make_arm(task, arm=arm_name, cameras=CAMERAS, image_size=32)
    spec = arm.observation_spec
    rng = np.random.default_rng(0)
    obs = arm.reset()
    spec.validate(obs)
    for _ in range(4):
        applied = arm.send_action(rng.uniform(-1, 1, 5).astype(np.float32))
        arm.action_spec.validate(applied)
        obs = arm.get_observation()
        spec.validate(obs)
        for camera in CAMERAS:
            assert obs[camera].dtype == np.uint8 and obs[camera].shape == (32, 32, 3)
        assert isinstance(arm.outcome(), TaskOutcome)
    assert arm.health().status is HealthStatus.OK


@pytest.mark.parametrize("task", ["push", "pick_cube", "peg_insertion"])
def test_pixel_only_variant_hides_the_task_state(make_arm, task):
    arm = make_arm(task, {"privileged_state": False}, cameras=["side_cam"], image_size=32)
    assert set(arm.observation_spec) == {
        "joint_pos", "joint_vel", "ee_pos", "ee_yaw", "gripper", "side_cam"}
    arm.observation_spec.validate(arm.get_observation())
    assert "object_pos" in arm.task_state()  # experts and rewards still see the truth


def _first_obs(seed: int, randomize: bool) -> dict[str, np.ndarray]:
    arm = MujocoArm(TASKS.get("pick_cube")(), seed=seed, cameras=["wrist_cam", "side_cam"],
                    image_size=48, randomize=RandomizationConfig() if randomize else None)
    arm.connect()
    try:
        return arm.get_observation()
    finally:
        arm.disconnect()


@pytest.mark.parametrize("randomize", [False, True])
def test_same_seed_gives_the_same_first_observation(randomize):
    a, b, c = (_first_obs(s, randomize) for s in (7, 7, 8))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.allclose(a["object_pos"], c["object_pos"])


def test_randomization_changes_colours_lighting_and_cameras(make_arm):
    plain = make_arm("pick_cube", seed=3, cameras=["side_cam"], image_size=48)
    rand = make_arm("pick_cube", seed=3, cameras=["side_cam"], image_size=48,
                    randomize=RandomizationConfig())
    object_geom = rand.model.geom("object").id
    assert not np.allclose(rand.model.geom_rgba[object_geom], plain.model.geom_rgba[object_geom])
    assert not np.allclose(rand.model.light_pos, plain.model.light_pos)
    assert not np.allclose(rand.model.cam_quat, plain.model.cam_quat)
    first = rand.model.geom_rgba[object_geom].copy()
    rand.reset()  # every reset draws a new look
    assert not np.allclose(rand.model.geom_rgba[object_geom], first)
    arm_geom = rand.model.body("arm/hand").geomadr[0]
    np.testing.assert_array_equal(rand.model.geom_rgba[arm_geom], plain.model.geom_rgba[arm_geom])


def test_reseeding_repeats_the_episode_sequence(make_arm):
    arm = make_arm("push", seed=0)
    arm.seed(11)
    firsts = [arm.reset()["object_pos"] for _ in range(3)]
    arm.seed(11)
    again = [arm.reset()["object_pos"] for _ in range(3)]
    np.testing.assert_array_equal(np.stack(firsts), np.stack(again))
    assert len({tuple(f) for f in firsts}) == 3


@pytest.mark.parametrize("arm_name", ["small_arm", "so101"])
@pytest.mark.parametrize("camera", ["wrist_cam", "side_cam"])
def test_images_change_when_the_arm_moves(make_arm, arm_name, camera):
    arm = make_arm("reach", arm=arm_name, cameras=[camera], image_size=64)
    before = arm.get_observation()[camera].astype(np.int16)
    for _ in range(5):
        arm.send_action(np.array([0.0, 0.8, -0.3, 0.5, 0.0], np.float32))
    after = arm.get_observation()[camera].astype(np.int16)
    changed = np.mean(np.abs(after - before).sum(-1) > 30)
    assert changed > 0.02, f"only {changed:.1%} of {camera} pixels changed"
    assert before.std() > 10  # a real picture, not a blank frame


def test_bad_arm_and_camera_names_are_named_in_the_error():
    with pytest.raises(RegistryError, match="unknown arm 'ur5'.*small_arm"):
        MujocoArm(TASKS.get("reach")(), arm="ur5")
    with pytest.raises(HardwareError, match="unknown cameras.*top_cam"):
        MujocoArm(TASKS.get("reach")(), cameras=["top_cam"])


def test_peg_starts_held_between_the_fingers(make_arm):
    arm = make_arm("peg_insertion")
    peg = arm.task_state()["object_pos"]
    assert np.linalg.norm(peg - arm.ee_pos()) < 0.02
    for _ in range(5):
        arm.send_action(np.array([0.0, 0.0, 1.0, 0.0, 1.0], np.float32))
    assert arm.task_state()["object_pos"][2] > peg[2] + 0.1  # it rose with the hand


@pytest.mark.parametrize("arm_name", ["small_arm", "so101"])
def test_an_arm_touches_nothing_at_rest_and_swings_far_to_the_side(make_arm, arm_name):
    """No contact holds the base joint (small_arm's first link sits in its base, which MuJoCo's
    parent filter lets collide: the pair stalled the joint near 0.5 rad, and 7 % of reach
    targets, those far to the side, were out of reach)."""
    arm = make_arm("reach", arm=arm_name, seed=0)
    arm.reset()
    _, data = arm._require()
    assert data.ncon == 0, "the arm at rest is in contact with something"
    for _ in range(25):
        arm.send_action(np.array([0.0, 1.0, 0.0, 0.0, 0.0], np.float32))
    x, y, _ = arm.ee_pos()
    assert np.degrees(np.arctan2(y, x - arm.arm.base_pos[0])) > 60, arm.ee_pos()
