"""Scripted experts: >= 90% success at full skill, worse when clumsy, and a hand-checked rollout."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest

from sim import MujocoArm
from sim.experts import EXPERTS, success_rate

TASKS_WITH_EXPERTS = ["reach", "push", "pick_cube", "peg_insertion"]


def expert_success(arm: MujocoArm, skill: float, episodes: int) -> float:
    return success_rate(EXPERTS.get(arm.task.name)(arm, skill=skill, seed=1), episodes)


@pytest.mark.parametrize("task", TASKS_WITH_EXPERTS)
def test_full_skill_expert_succeeds_at_least_90_percent(make_arm, task):
    assert expert_success(make_arm(task, seed=5), skill=1.0, episodes=30) >= 0.9


@pytest.mark.parametrize("task", ["reach", "pick_cube"])  # what the README says so101 can do
def test_so101_full_skill_expert_succeeds_at_least_90_percent(make_arm, task):
    arm = make_arm(task, arm="so101", seed=5)
    assert expert_success(arm, skill=1.0, episodes=30) >= 0.9


def test_skill_level_degrades_the_expert(make_arm):
    arm = make_arm("pick_cube", seed=5)
    assert expert_success(arm, 0.2, 15) < expert_success(arm, 1.0, 15)


def test_skill_outside_0_1_is_refused(make_arm):
    with pytest.raises(ValueError, match="skill must be in"):
        EXPERTS.get("push")(make_arm("push"), skill=1.5)


@pytest.mark.parametrize("task", ["reach", "pick_cube"])
def test_near_miss_expert_ends_close_to_the_goal_but_off_it(make_arm, task):
    arm = make_arm(task, seed=3)
    expert = EXPERTS.get(task)(arm, miss=0.06, seed=4)
    goal_key = "target_pos" if task == "reach" else "goal_pos"
    for _ in range(3):
        arm.reset()
        expert.reset()
        for _ in range(arm.task.max_steps):  # (it may pass through the goal on its way)
            arm.send_action(expert.act())
        moved = arm.ee_pos() if task == "reach" else arm.task_state()["object_pos"]
        assert not arm.outcome().success
        assert np.linalg.norm(moved - arm.task_state()[goal_key]) < 2 * 0.06  # near, not lost


def test_negative_miss_is_refused(make_arm):
    with pytest.raises(ValueError, match="miss must be a distance"):
        EXPERTS.get("reach")(make_arm("reach"), miss=-0.01)


def geometric_success(arm: MujocoArm) -> bool:
    """The task's goal, checked from body and geom poses rather than the task's detector."""
    m, d = arm.model, arm.data
    obj = d.body("object").xpos
    goal = d.mocap_pos[m.body("goal").mocapid[0]]
    task = arm.task
    if task.name == "push":
        return bool(np.linalg.norm(obj[:2] - goal[:2]) < task.tolerance)
    if task.name == "pick_cube":
        return bool(np.linalg.norm(obj - goal) < task.tolerance and obj[2] > 0.03)
    # peg: tip inside the box that the four walls enclose, and deep enough
    walls = [g for g in range(m.ngeom) if m.geom_bodyid[g] == m.body("goal").id]
    inner_x = min(abs(d.geom_xpos[g][0] - goal[0]) - m.geom_size[g][0] for g in walls
                  if abs(d.geom_xpos[g][0] - goal[0]) > 1e-6)
    peg = m.geom("object").id
    tip_point = d.geom_xpos[peg] - d.geom_xmat[peg].reshape(3, 3)[:, 2] * m.geom_size[peg][2]
    tip = tip_point[2]
    wall_top = 2 * max(m.geom_size[g][2] for g in walls)
    peg_half = m.geom_size[m.geom("object").id][0]
    inside = np.all(np.abs(tip_point[:2] - goal[:2]) + peg_half <= inner_x + 1e-3)
    return bool(inside and wall_top - tip >= task.depth)


@pytest.mark.parametrize("task", ["push", "pick_cube", "peg_insertion"])
def test_detector_agrees_with_a_hand_checked_rollout(make_arm, task, tmp_path):
    arm = make_arm(task, seed=2, cameras=["wrist_cam", "side_cam"], image_size=128)
    expert = EXPERTS.get(task)(arm)
    obs = arm.reset()
    assert not arm.outcome().success and not geometric_success(arm)
    frames = [np.concatenate([obs["side_cam"], obs["wrist_cam"]], axis=1)]
    for _ in range(arm.task.max_steps):
        arm.send_action(expert.act())
        obs = arm.get_observation()
        frames.append(np.concatenate([obs["side_cam"], obs["wrist_cam"]], axis=1))
        assert arm.outcome().success == geometric_success(arm)
        if arm.outcome().success:
            break
    assert arm.outcome().success
    picks = [frames[0], frames[len(frames) // 2], frames[-1]]
    sheet = tmp_path / f"{task}-rollout.png"  # side | wrist at start, middle and success
    imageio.imwrite(sheet, np.concatenate(picks, axis=0))
    assert sheet.stat().st_size > 10_000
