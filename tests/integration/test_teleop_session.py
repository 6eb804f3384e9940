"""The keyboard teleop chosen by config in real sessions: a person's labels and e-stop.

(`teleop=scripted`, the stand-in for a person, is exercised in test_rlpd_session.py.)"""

from __future__ import annotations

import os
import threading
import time

import pytest

from buffer import ZarrStorage
from robot_rl.core import ConfigError, SafetyError
from robot_rl.runtime.checkpoint import load_latest
from robot_rl.runtime.ray.session import RaySession
from tests.integration.sessions import new_session as session_at

QUICK = ["task=reach", "task.max_steps=20", "learner.batch_size=16", "algo.params.hidden=[16,16]"]


def new_session(tmp_path, *overrides: str) -> RaySession:
    return session_at(tmp_path / "run", *QUICK, *overrides)


def test_human_labels_without_a_teleop_fail_before_anything_starts(tmp_path) -> None:
    with pytest.raises(ConfigError, match="teleop=keyboard"):
        new_session(tmp_path, "reward=human_label", "run.env_steps=10")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("override", "expected"), [
    ("teleop.params.speed=3", "speed must be in"),
    ("+teleop.params.joystick=1", "teleop.params for 'keyboard'"),
])
def test_bad_keyboard_params_are_config_errors(tmp_path, override, expected) -> None:
    with pytest.raises(ConfigError, match=expected):
        new_session(tmp_path, "teleop=keyboard", override, "run.env_steps=10")


@pytest.mark.slow
def test_keyboard_labels_end_episodes_and_its_e_stop_holds_and_keeps_the_data(
        tmp_path, ray_local) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"n")  # the person calls the first episode a failure ...
    session = new_session(tmp_path, "reward=human_label", "teleop=keyboard",
                          f"+teleop.params.fd={read_fd}", "run.env_steps=100000",
                          "learner.warmup_steps=100000", "run.checkpoint_every=100000")

    def episodes() -> int:
        try:
            return ZarrStorage.open_existing(session.run.buffer).episodes
        except Exception:  # not created yet
            return 0

    def press_e_stop_after_the_second_episode() -> None:
        while episodes() < 2:
            time.sleep(0.005)
        os.write(write_fd, b"x")  # ... lets the second run out, then presses the e-stop

    threading.Thread(target=press_e_stop_after_the_second_episode, daemon=True).start()
    with pytest.raises(SafetyError, match="e-stop.*run the same command again to resume"):
        session.run_until_budget()
    storage = ZarrStorage.open_existing(session.run.buffer)
    table = storage.read_episodes()
    assert not table["success"][0] and table["length"][0] < 20  # the label ended episode 1
    assert table["length"][1] == 20 and len(table["length"]) == 3  # the e-stopped one is kept
    stamps = storage.read_step_info()["timestamp"]
    second = stamps[table["start"][1]:table["start"][1] + 20]
    assert second[-1] - second[0] >= 19 * 0.1 - 0.05  # a person drives: 10 Hz, robot.control_hz
    saved = load_latest(session.run.checkpoints)
    assert saved["counters"]["env_steps"] == table["length"].sum()
    assert saved["safety"]["sim0"]["estop"] == 1  # held by the e-stop, and counted
    os.close(write_fd)
    os.close(read_fd)
