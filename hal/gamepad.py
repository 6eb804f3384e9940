"""Gamepads through pygame (headless: SDL's dummy video driver); pygame is imported only here."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from robot_rl.core import HardwareError


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
