"""`robot-rl record-demos teleop=keyboard`: a person's demonstrations, typed into a pipe."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from buffer import ZarrStorage
from buffer.episodes import EpisodeReader
from robot_rl.cli import main
from robot_rl.core import Source
from robot_rl.runtime.run_dir import RunDir


def person(write_fd: int, ready: Path, *keys_and_pauses: bytes | float) -> threading.Thread:
    """A person at the keyboard: once `ready` exists (recording has begun), types each byte
    string and waits each number of seconds."""

    def type_along() -> None:
        while not ready.exists():
            time.sleep(0.01)
        for item in keys_and_pauses:
            if isinstance(item, bytes):
                os.write(write_fd, item)
            else:
                time.sleep(item)

    thread = threading.Thread(target=type_along, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def keyboard():
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    os.close(write_fd)
    os.close(read_fd)


def record(tmp_path, read_fd: int, episodes: int) -> int:
    return main(["record-demos", "task=reach", "task.max_steps=100", "robot.control_hz=20",
                 "teleop=keyboard", f"+teleop.params.fd={read_fd}", f"episodes={episodes}",
                 "into=demos", f"run.dir={tmp_path / 'run'}"])


@pytest.mark.slow
def test_a_person_records_labelled_demos_at_the_control_rate(tmp_path, keyboard, capsys) -> None:
    read_fd, write_fd = keyboard
    # take control and move, call it a success; move, call it a failure
    person(write_fd, tmp_path / "run" / "demos", b" w", 1.0, b"y", 0.5, b"dn")
    assert record(tmp_path, read_fd, episodes=2) == 0, capsys.readouterr().err
    assert "recorded 2 reach demos (teleop=keyboard): 1 successful" in capsys.readouterr().out
    episodes = list(EpisodeReader(ZarrStorage.open_existing(RunDir(tmp_path / "run").demos)))
    first, second = episodes
    assert first.success and first.info["terminated"][-1]  # y: a success
    assert not second.success and second.info["truncated"][-1]  # n: a failure
    assert (np.concatenate([first.info["source"], second.info["source"]]) == Source.DEMO).all()
    assert first.action[0, 0] == 0.5  # w moved the arm along +x, through the safety layer
    assert second.action[-1, 1] == -0.5  # d moved it along -y
    # paced at robot.control_hz (20 Hz): steps 50 ms apart, not as fast as the sim can go
    stamps = first.info["timestamp"]
    assert len(stamps) >= 2 and stamps[-1] - stamps[0] >= 0.05 * (len(stamps) - 1) - 0.03


@pytest.mark.slow
def test_the_e_stop_ends_recording_with_the_robot_held(tmp_path, keyboard, capsys) -> None:
    read_fd, write_fd = keyboard
    person(write_fd, tmp_path / "run" / "demos", b" w", 1.0, b"y", 1.0, b"x")  # a demo, e-stop
    assert record(tmp_path, read_fd, episodes=5) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    found = re.search(r"stopped by the e-stop: the robot holds; the (\d+) demos recorded", err)
    assert found, err
    episodes = list(EpisodeReader(ZarrStorage.open_existing(RunDir(tmp_path / "run").demos)))
    assert len(episodes) == int(found.group(1)) >= 1  # what was recorded before it is kept
    assert episodes[0].success  # the labelled demo
    assert all(ep.length >= 1 for ep in episodes)
