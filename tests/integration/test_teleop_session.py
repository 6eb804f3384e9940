"""The keyboard teleop chosen by config in real sessions: a person's labels and e-stop.

(`teleop=scripted`, the stand-in for a person, is exercised in test_rlpd_session.py.)"""

from __future__ import annotations

import os
import threading
import time

import pytest

from buffer import ReplayBuffer
from robot_rl.config import compose_session
from robot_rl.core import ConfigError, SafetyError
from robot_rl.runtime.checkpoint import load_latest
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session import Session

QUICK = ["task=reach", "task.max_steps=20", "learner.batch_size=16", "algo.params.hidden=[16,16]"]


def new_session(tmp_path, *overrides: str) -> Session:
    run = RunDir(tmp_path / "run")
    cfg = compose_session([*QUICK, f"run.dir={run.root}", *overrides])
    run.root.mkdir()
    run.save_config(cfg)
    return Session(cfg, run)


def test_human_labels_without_a_teleop_fail_before_anything_starts(tmp_path) -> None:
    session = new_session(tmp_path, "reward=human_label", "run.env_steps=10")
    with pytest.raises(ConfigError, match="teleop=keyboard"):
        session.run_until_budget()
    assert not session.run.buffer.exists()


@pytest.mark.parametrize(("override", "expected"), [
    ("teleop.params.speed=3", "speed must be in"),
    ("+teleop.params.joystick=1", "teleop.params for 'keyboard'"),
])
def test_bad_keyboard_params_are_config_errors(tmp_path, override, expected) -> None:
    session = new_session(tmp_path, "teleop=keyboard", override, "run.env_steps=10")
    with pytest.raises(ConfigError, match=expected):
        session.run_until_budget()


@pytest.mark.slow
def test_keyboard_labels_end_episodes_and_its_e_stop_holds_and_keeps_the_data(tmp_path) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"n")  # the person calls the first episode a failure ...
    session = new_session(tmp_path, "reward=human_label", "teleop=keyboard",
                          f"+teleop.params.fd={read_fd}", "run.env_steps=100000",
                          "learner.warmup_steps=100000", "run.checkpoint_every=100000")

    def press_e_stop_after_the_second_episode() -> None:
        while session.counters.episodes < 2:
            time.sleep(0.005)
        os.write(write_fd, b"x")  # ... lets the second run out, then presses the e-stop

    threading.Thread(target=press_e_stop_after_the_second_episode, daemon=True).start()
    with pytest.raises(SafetyError, match="e-stop.*run the same command again to resume"):
        session.run_until_budget()
    assert session.robot.estopped and session.robot.events["estop"] == 1
    with ReplayBuffer(session.run.buffer, session.obs_spec, session.robot.action_spec) as buffer:
        table = buffer.episode_table()
    assert not table["success"][0] and table["length"][0] < 20  # the label ended episode 1
    assert table["length"][1] == 20 and len(table["length"]) == 3  # the e-stopped one is kept
    with ReplayBuffer(session.run.buffer, session.obs_spec, session.robot.action_spec) as buffer:
        stamps = buffer.storage.read_step_info()["timestamp"]
    second = stamps[table["start"][1]:table["start"][1] + 20]
    assert second[-1] - second[0] >= 19 * 0.1 - 0.05  # a person drives: 10 Hz, robot.control_hz
    assert load_latest(session.run.checkpoints)["counters"]["env_steps"] == table["length"].sum()
    os.close(write_fd)
    os.close(read_fd)
