"""The keyboard teleop: key presses from a pipe or a real pseudo-terminal become commands."""

from __future__ import annotations

import os
import pty
import termios
import time

import numpy as np
import pytest

from hal import ESTOP, KeyboardTeleop, TeleopCommand
from robot_rl.core import ArraySpec, ConfigError

ACTION = ArraySpec((5,), "float32", -1.0, 1.0)


def command_after(teleop: KeyboardTeleop, write_fd: int, keys: bytes) -> TeleopCommand | None:
    """Type `keys`, give the reader thread time to take them, then read one command."""
    os.write(write_fd, keys)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        with teleop._lock:
            if len(teleop._keys) == len(keys):
                break
        time.sleep(0.01)
    return teleop.read()


@pytest.fixture
def keyboard():
    read_fd, write_fd = os.pipe()
    teleop = KeyboardTeleop(ACTION, speed=0.5, fd=read_fd)
    yield teleop, write_fd
    teleop.close()
    os.close(write_fd)
    os.close(read_fd)


def test_nothing_pressed_is_nothing_to_report(keyboard) -> None:
    teleop, _ = keyboard
    assert teleop.read() is None


def test_labels_arrive_without_taking_over(keyboard) -> None:
    teleop, keys = keyboard
    command = command_after(teleop, keys, b"y")
    assert command == TeleopCommand(None, False, frozenset(), True)
    assert command_after(teleop, keys, b"yn").label is False  # the last key pressed wins
    assert teleop.read() is None  # a label is read once


def test_takeover_jogs_the_arm_until_given_back(keyboard) -> None:
    teleop, keys = keyboard
    assert command_after(teleop, keys, b"wd") is None  # moving keys do nothing out of control
    command = command_after(teleop, keys, b" wwqc")
    assert command.takeover
    np.testing.assert_array_equal(command.action, [1.0, 0.0, 0.0, 0.5, 1.0])
    assert command.action.dtype == np.float32
    still = teleop.read()  # in control with no key: hold still, gripper as the person left it
    np.testing.assert_array_equal(still.action, [0.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(command_after(teleop, keys, b"SFo").action,
                                  [-0.5, 0.0, -0.5, 0.0, -1.0])  # upper case counts too
    assert command_after(teleop, keys, b" ") is None


def test_x_presses_the_e_stop(keyboard) -> None:
    teleop, keys = keyboard
    command = command_after(teleop, keys, b"x")
    assert command.buttons == {ESTOP}
    assert command.action is None and not command.takeover


def test_the_end_of_input_stops_the_reader_and_keeps_its_keys() -> None:
    read_fd, write_fd = os.pipe()
    teleop = KeyboardTeleop(ACTION, fd=read_fd)
    os.write(write_fd, b"n")
    os.close(write_fd)
    teleop._reader.join(timeout=5.0)
    assert not teleop._reader.is_alive()
    assert teleop.read().label is False
    teleop.close()
    os.close(read_fd)


def test_a_terminal_is_read_key_by_key_and_restored_on_close() -> None:
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    teleop = KeyboardTeleop(ACTION, fd=slave)
    try:
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # no Enter needed
        assert command_after(teleop, master, b"y").label is True
    finally:
        teleop.close()
    assert termios.tcgetattr(slave) == before
    os.close(master)
    os.close(slave)


def test_bad_set_ups_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"\[dx, dy, dz, dyaw, gripper\]"):
        KeyboardTeleop(ArraySpec((7,), "float32", -1.0, 1.0), fd=0)
    with pytest.raises(ConfigError, match="speed"):
        KeyboardTeleop(ACTION, speed=2.0, fd=0)
