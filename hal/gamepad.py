"""Gamepads through pygame (headless: SDL's dummy video driver); pygame is imported only here."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol

from hal.device_teleop import DeviceMapping, DeviceTeleop
from hal.robot import Robot
from hal.teleop import TELEOPS
from robot_rl.core import ArraySpec, HardwareError


class Joystick(Protocol):
    """The part of `pygame.joystick.JoystickType` a gamepad teleop reads."""

    def get_numaxes(self) -> int: ...
    def get_axis(self, axis: int) -> float: ...
    def get_numbuttons(self) -> int: ...
    def get_button(self, button: int) -> bool: ...


def _pygame() -> ModuleType:
    """pygame with its joystick subsystem up, on SDL's dummy video and audio drivers if unset."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError:
        raise HardwareError("teleop=gamepad needs pygame: pip install 'robot-rl[teleop]'") from None
    pygame.display.init()  # the event pump that refreshes joystick state needs the video system
    pygame.joystick.init()
    return pygame


def list_gamepads() -> list[dict[str, Any]]:
    """Every joystick SDL sees (index, name, guid, axes, buttons); none without pygame."""
    try:
        pygame = _pygame()
    except HardwareError:
        return []
    pads = []
    for index in range(pygame.joystick.get_count()):
        pad = pygame.joystick.Joystick(index)
        pads.append({"index": index, "name": pad.get_name(), "guid": pad.get_guid(),
                     "axes": pad.get_numaxes(), "buttons": pad.get_numbuttons()})
    return pads


def open_gamepad(index: int = 0) -> tuple[Joystick, Callable[[], None]]:
    """SDL's joystick `index` and the event pump that refreshes its state."""
    pygame = _pygame()
    count = pygame.joystick.get_count()
    if index >= count:
        raise HardwareError(f"teleop=gamepad: no joystick {index}; SDL sees {count} (plug one "
                            "in, or pick another with teleop.params.index; `robot-rl hal list` "
                            "shows input devices)")
    return pygame.joystick.Joystick(index), pygame.event.pump


@TELEOPS.register("gamepad")
class GamepadTeleop(DeviceTeleop):
    """A gamepad: sticks move the end effector, buttons close/open, take over, label, e-stop."""

    def __init__(self, action_spec: ArraySpec, mapping: DeviceMapping, joystick: Joystick,
                 pump: Callable[[], None], release_after: int = 5) -> None:
        super().__init__(action_spec, mapping, release_after)
        self.joystick, self.pump = joystick, pump

    @classmethod
    def unit_name(cls, index: int = 0, **params: Any) -> str:
        return f"gamepad:{index}"

    @classmethod
    def for_robot(cls, robot: Robot, seed: int, *, index: int = 0,
                  axes: Mapping[Any, str] | None = None, buttons: Mapping[Any, str] | None = None,
                  dead_zone: float = 0.1, scale: float = 1.0,
                  release_after: int = 5) -> GamepadTeleop:
        mapping = DeviceMapping.from_params(axes or {}, buttons, dead_zone, scale)
        joystick, pump = open_gamepad(index)
        return cls(robot.action_spec, mapping, joystick, pump, release_after)

    def poll(self) -> tuple[Sequence[float], frozenset[int]]:
        self.pump()
        pad = self.joystick
        axes = [pad.get_axis(i) for i in range(pad.get_numaxes())]
        return axes, frozenset(b for b in range(pad.get_numbuttons()) if pad.get_button(b))
