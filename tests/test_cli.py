"""The CLI's error paths: one clear line on stderr, a non-zero exit, no traceback."""

import subprocess
import sys

import pytest


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "bogus_key=1"], "bogus_key"),
        (["train", "task=teleport"], "teleport"),
        (["train", "seed=abc"], "seed"),
        (["train", "run.env_steps=lots"], "env_steps"),
        (["train", "run.env_steps=-5"], "run.env_steps must be positive"),
        (["train", "task.reward=shaped"], "task.reward must be 'dense' or 'sparse'"),
        (["train", "algo.params.critics=many"], "critics"),
        (["train", "task.params.wobble=3"], "wobble"),
        (["train", "reward=human_label"], "add teleop=keyboard"),
        (["train", "teleop=joystick"],
         "choose teleop= one of: gamepad, keyboard, scripted, spacemouse"),
    ],
)
def test_bad_train_overrides_fail_with_one_clear_line(tmp_path, args, expected):
    result = run_cli(*args, f"run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("robot-rl train: error:")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "buffer").exists()  # nothing was started


@pytest.mark.parametrize("command", ["info", "replay"])
def test_info_and_replay_on_a_missing_run_dir(tmp_path, command):
    result = run_cli(command, str(tmp_path / "nope"))
    assert result.returncode != 0
    expected = f"robot-rl {command}: error: run directory {tmp_path / 'nope'} does not exist"
    assert result.stderr.strip() == expected


def test_info_on_a_directory_that_is_not_a_run(tmp_path):
    result = run_cli("info", str(tmp_path))
    assert result.returncode != 0
    assert "is not a robot_rl run directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["train", "info", "replay"])
def test_help_explains_with_an_example(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "example:" in result.stdout and f"robot-rl {command}" in result.stdout
