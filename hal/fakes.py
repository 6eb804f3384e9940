"""In-package hardware fakes for tests: a point-mass 'arm' (`robot=fake`, on `fake_robot` units
a hardware file declares), a gamepad and a SpaceMouse's HID, and a teleop that replays a script
of commands."""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hal.checker import CHECKERS, Checker
from hal.robot import Health, HealthStatus, Robot
from hal.robots import ROBOTS, RobotKind, RobotSetup
from hal.teleop import Teleop, TeleopCommand
from hal.units import Node, Unit, declared_unit
from robot_rl.core import ArraySpec, DictSpec, HardwareError, Observation


class PointRobot(Robot):
    """An end effector that moves by `action[:3] * scale` metres per step; can be made to fault.

    With `joints > 0` it also reports `joint_pos` and `joint_vel`, which tests set directly.
    With a `journal` file it appends a line per command (`action ...`, `disconnect`), so a test
    can read what a process did to its robot before it stopped.
    """

    def __init__(self, robot_id: str = "fake0", scale: float = 0.05, joints: int = 0,
                 journal: Path | None = None) -> None:
        self.robot_id = robot_id
        self.journal = journal
        self.scale = scale
        self.joint_pos = np.zeros(joints)
        self.joint_vel = np.zeros(joints)
        self.connected = False
        self.position = np.zeros(3)
        self.applied: list[np.ndarray] = []
        self.fault: str | None = None
        self.scene_problem: str | None = None  # set: the scene needs a person to reset it

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False
        self._note("disconnect")

    def _note(self, line: str) -> None:
        if self.journal is not None:
            with open(self.journal, "a") as f:
                f.write(line + "\n")

    @property
    def observation_spec(self) -> DictSpec:
        fields = {"ee_pos": ArraySpec((3,), "float32")}
        if self.joint_pos.size:
            joints = ArraySpec(self.joint_pos.shape, "float32")
            fields.update({"joint_pos": joints, "joint_vel": joints})
        return DictSpec(fields)

    @property
    def action_spec(self) -> ArraySpec:
        return ArraySpec((5,), "float32", -1.0, 1.0)

    def get_observation(self) -> Observation:
        if not self.connected:
            raise HardwareError(f"{self.robot_id} is unplugged: connect it first")
        obs = {"ee_pos": self.position.astype(np.float32)}
        if self.joint_pos.size:
            obs.update(joint_pos=self.joint_pos.astype(np.float32),
                       joint_vel=self.joint_vel.astype(np.float32))
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        if not self.connected:
            raise HardwareError(f"{self.robot_id} is unplugged: connect it first")
        applied = np.asarray(action, dtype=np.float32)
        self.position = self.position + applied[:3] * self.scale
        self.applied.append(applied)
        self._note("action " + " ".join(f"{v:g}" for v in applied))
        return applied

    def reset(self) -> Observation:
        self.position = np.zeros(3)
        return self.get_observation()

    def health(self) -> Health:
        if not self.connected:
            return Health(HealthStatus.DISCONNECTED, "not connected")
        if self.fault:
            return Health(HealthStatus.FAULT, self.fault)
        if self.scene_problem:
            return Health(HealthStatus.RESET_NEEDED, self.scene_problem)
        return Health(HealthStatus.OK)


@dataclass
class PointRobotSettings:
    """The keys of `robot=fake` beyond the common ones."""

    joints: int = 0
    journal: str | None = None


@ROBOTS.register("fake")
class FakeRobotKind(RobotKind):
    """`robot=fake`: a PointRobot standing in for hardware on a declared `fake_robot` unit."""

    settings = PointRobotSettings
    unit_type = "fake_robot"

    @classmethod
    def unit(cls, settings: PointRobotSettings, setup: RobotSetup) -> str:
        return setup.robot_id

    @classmethod
    def build(cls, settings: PointRobotSettings, setup: RobotSetup) -> Robot:
        return PointRobot(setup.robot_id, scale=setup.translation_scale, joints=settings.joints,
                          journal=None if settings.journal is None else Path(settings.journal))


@CHECKERS.register("fake_robot")
class FakeRobotChecker(Checker):
    """Fake robots a hardware file declares (`type: fake_robot`): exclusive, like real arms;
    a declared `fault: why` makes one unhealthy."""

    type = "fake_robot"

    def discover(self, node: Node) -> list[Unit]:
        return [declared_unit(d, node, robot=True, exclusive=True)
                for d in node.declared_of(self.type)]

    def validate(self, unit: Unit) -> Health:
        if unit.meta.get("fault"):
            return Health(HealthStatus.FAULT, str(unit.meta["fault"]))
        return Health(HealthStatus.OK, "a fake robot")


class FakeJoystick:
    """A gamepad with the methods of `pygame.joystick.JoystickType` that teleop reads."""

    def __init__(self, axes: int = 6, buttons: int = 8) -> None:
        self.axes = [0.0] * axes
        self.pressed: set[int] = set()
        self.buttons = buttons

    def get_numaxes(self) -> int:
        return len(self.axes)

    def get_axis(self, axis: int) -> float:
        return self.axes[axis]

    def get_numbuttons(self) -> int:
        return self.buttons

    def get_button(self, button: int) -> bool:
        return button in self.pressed


def spacemouse_reports(translation: tuple[int, int, int] = (0, 0, 0),
                       rotation: tuple[int, int, int] = (0, 0, 0),
                       buttons: int | None = None, combined: bool = False) -> list[bytes]:
    """The HID reports a SpaceMouse sends for a cap position (raw ±350) and a button mask.

    `combined` is the newer models' single report 1 with all six axes.
    """
    if combined:
        reports = [struct.pack("<B6h", 1, *translation, *rotation)]
    else:
        reports = [struct.pack("<B3h", 1, *translation), struct.pack("<B3h", 2, *rotation)]
    if buttons is not None:
        reports.append(struct.pack("<BH", 3, buttons))
    return reports


class FakeHidDevice:
    """A HID device with the methods of `hid.device` that teleop reads: queued reports, bytes in."""

    def __init__(self) -> None:
        self.reports: deque[bytes] = deque()
        self.closed = False

    def send(self, reports: list[bytes]) -> None:
        self.reports.extend(reports)

    def read(self, max_length: int) -> list[int]:
        return list(self.reports.popleft()[:max_length]) if self.reports else []

    def close(self) -> None:
        self.closed = True


class ReplayTeleop(Teleop):
    """Gives `commands` one per read, then None: takeovers, labels and e-stop, scripted."""

    def __init__(self, commands: Sequence[TeleopCommand | None]) -> None:
        self.commands = list(commands)
        self.reads = 0

    def read(self) -> TeleopCommand | None:
        self.reads += 1
        return self.commands.pop(0) if self.commands else None
