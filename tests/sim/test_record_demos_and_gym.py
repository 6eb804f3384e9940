"""`robot-rl record-demos` into a real buffer, and the gymnasium registration of every task."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from buffer import ZarrStorage
from robot_rl.cli import main
from robot_rl.core import Source
from sim import ENV_IDS


@pytest.fixture
def cli(capsys):
    """Runs `robot-rl ARGS` in this process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_record_demos_fills_a_buffer_that_info_reports(cli, tmp_path):
    run = tmp_path / "demos"
    code, out, err = cli("record-demos", "task=push", "episodes=3", f"run.dir={run}")
    assert code == 0, err
    assert "recorded 3 push demos" in out
    info = json.loads(cli("info", str(run), "--json")[1])
    assert info["episodes"] == 3 and info["env_steps"] > 3
    assert info["success_rate"] >= 2 / 3
    steps = ZarrStorage.open_existing(run / "buffer").read_steps()
    assert set(np.unique(steps["source"])) == {int(Source.DEMO)}
    assert cli("record-demos", "task=push", "episodes=2", f"run.dir={run}")[0] == 0
    assert json.loads(cli("info", str(run), "--json")[1])["episodes"] == 5


def test_record_demos_near_misses_are_recorded_as_failures(cli, tmp_path):
    run = tmp_path / "misses"
    code, out, err = cli("record-demos", "task=reach", "episodes=2", "miss=0.08", f"run.dir={run}")
    assert code == 0, err
    assert "recorded 2 reach demos (skill 1.0, missing by 0.08 m): 0 successful" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["task=push", "episodes=0"], "episodes must be at least 1"),
        (["task=push", "episodes=many"], "episodes must be a number"),
        (["task=push", "skill=2"], "skill must be in [0, 1]"),
        (["task=push", "miss=-0.1"], "miss must be a distance >= 0"),
        (["task=push", "into=elsewhere"], "into must be one of buffer, demos"),
        (["task=push", "robot.arm=ur5"], "unknown arm 'ur5'"),
        (["task=push", "robot.cameras=[top_cam]"], "unknown cameras"),
    ],
)
def test_record_demos_bad_arguments_fail_in_one_line(cli, tmp_path, args, expected):
    code, _, err = cli("record-demos", *args, f"run.dir={tmp_path / 'run'}")
    assert code == 2
    assert err.startswith("robot-rl record-demos: error:") and expected in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "buffer").exists()


def test_record_demos_refuses_a_run_of_another_task(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("record-demos", "task=push", "episodes=1", f"run.dir={run}")[0] == 0
    code, _, err = cli("record-demos", "task=pick_cube", "episodes=1", f"run.dir={run}")
    assert code == 2 and "was run with task=push; it cannot resume as task=pick_cube" in err
    assert json.loads(cli("info", str(run), "--json")[1])["episodes"] == 1  # nothing lost


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_gymnasium_envs_step_and_report_success(env_id):
    env = gym.make(env_id, cameras=["wrist_cam"], image_size=32)
    try:
        check_env(env.unwrapped, skip_render_check=True)
        first, _ = env.reset(seed=4)
        again, _ = env.reset(seed=4)
        for key in first:
            np.testing.assert_array_equal(first[key], again[key])
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert isinstance(info["is_success"], bool) and terminated == info["is_success"]
        assert np.isfinite(reward)
    finally:
        env.close()


def test_gym_env_succeeds_under_its_expert():
    from sim.experts import EXPERTS

    env = gym.make("robot_rl/PickCube-v0", reward="sparse")
    try:
        env.reset(seed=0)
        expert = EXPERTS.get("pick_cube")(env.unwrapped.arm)
        for _ in range(100):
            _, reward, terminated, truncated, info = env.step(expert.act())
            if terminated or truncated:
                break
        assert info["is_success"] and reward == 1.0
    finally:
        env.close()


def test_an_env_left_open_at_exit_prints_no_egl_traceback():
    script = ("import gymnasium, sim\n"
              "env = gymnasium.make('robot_rl/PickCube-v0', render_mode='rgb_array')\n"
              "env.reset(seed=0)\nenv.render()\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "MUJOCO_GL": "egl"})
    assert result.returncode == 0
    assert "Traceback" not in result.stderr and "EGLError" not in result.stderr, result.stderr
