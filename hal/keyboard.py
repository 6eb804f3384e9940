"""A person at the terminal as the teleop device: labels, takeover, jogging and e-stop by key.

Keys (read one at a time, no Enter needed on a terminal):

    y / n        label the episode a success / a failure (`reward=human_label` ends it)
    space        take over from the policy, and press again to give it back
    w s  a d     while in control: move +x -x, +y -y
    r f  q e     while in control: move +z -z, yaw + -
    c / o        while in control: close / open the gripper
    x            e-stop: the robot holds and the session stops (its data is kept)

It drives arms whose action is `[dx, dy, dz, dyaw, gripper]` in [-1, 1], the layout of the sim
arms and of the end-effector-delta drivers; a key press moves one control step by `speed`.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import threading
import tty
from typing import Any

import numpy as np

from hal.robot import Robot
from hal.teleop import ESTOP, TELEOPS, Teleop, TeleopCommand
from robot_rl.core import ArraySpec, ConfigError

KEYS_HELP = ("teleop keys: y/n success/failure, space take over/give back, w/s a/d r/f q/e "
             "move ±x ±y ±z ±yaw, c/o close/open gripper, x e-stop")
MOTION = {"w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0),
          "r": (2, 1.0), "f": (2, -1.0), "q": (3, 1.0), "e": (3, -1.0)}
GRIPPER = {"c": 1.0, "o": -1.0}
LABELS = {"y": True, "n": False}


@TELEOPS.register("keyboard")
class KeyboardTeleop(Teleop):
    """Key presses from a file descriptor (the terminal by default), read on a daemon thread."""

    realtime = True

    def __init__(self, action_spec: ArraySpec, speed: float = 0.5, fd: int | None = None) -> None:
        if action_spec.shape != (5,):
            raise ConfigError(f"teleop=keyboard drives [dx, dy, dz, dyaw, gripper] actions; this "
                              f"robot's action is {action_spec}: use another teleop device")
        if not 0.0 < speed <= 1.0:
            raise ConfigError(f"teleop.params.speed must be in (0, 1], got {speed}")
        self.action_spec, self.speed = action_spec, speed
        self.fd = sys.stdin.fileno() if fd is None else fd
        self._keys: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._takeover = False
        self._gripper = -1.0  # open until the person closes it
        self._saved_mode = None
        if os.isatty(self.fd):  # keys arrive as pressed, without echo or Enter
            self._saved_mode = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
            print(KEYS_HELP, file=sys.stderr, flush=True)
        self._reader = threading.Thread(target=self._pump, name="keyboard-teleop", daemon=True)
        self._reader.start()

    @classmethod
    def for_robot(cls, robot: Robot, seed: int, **params: Any) -> KeyboardTeleop:
        return cls(robot.action_spec, **params)

    def _pump(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(self.fd, 64)
            if not data:  # end of input: the keys already read still count
                return
            with self._lock:
                self._keys.extend(data.decode(errors="ignore").lower())

    def read(self) -> TeleopCommand | None:
        with self._lock:
            keys, self._keys = self._keys, []
        motion = np.zeros(4)
        label, buttons = None, set()
        for key in keys:
            if key == " ":
                self._takeover = not self._takeover
            elif key == "x":
                buttons.add(ESTOP)
            elif key in LABELS:
                label = LABELS[key]
            elif key in GRIPPER:
                self._gripper = GRIPPER[key]
            elif key in MOTION:
                dim, sign = MOTION[key]
                motion[dim] += sign * self.speed
        if not (self._takeover or buttons or label is not None):
            return None
        action = None
        if self._takeover:
            action = np.append(np.clip(motion, -1.0, 1.0), self._gripper)
            action = action.astype(self.action_spec.dtype)
        return TeleopCommand(action, self._takeover, frozenset(buttons), label)

    def close(self) -> None:
        self._stop.set()
        self._reader.join(timeout=1.0)
        if self._saved_mode is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_mode)
            self._saved_mode = None
