"""Teleop devices with axes and buttons (gamepad, SpaceMouse): mapping, takeover and commands.

A device driver only says what its axes and buttons read now (`poll`); `DeviceTeleop` turns
that into `TeleopCommand`s through a `DeviceMapping` from config, with takeover hysteresis so a
stick passing through zero does not hand control back to the policy for a step.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hal.teleop import ESTOP, Teleop, TeleopCommand
from robot_rl.core import ArraySpec, ConfigError

DIMS = {"x": 0, "y": 1, "z": 2, "yaw": 3}
"""Action components a device axis may drive: `[dx, dy, dz, dyaw, gripper]` Δ-EE actions."""
ROLES = frozenset({"takeover", "estop", "success", "failure", "close", "open"})
"""What a button may do: hold to take over, e-stop, label the episode, close / open the gripper."""


@dataclass(frozen=True)
class DeviceMapping:
    """Device axis -> (action component, sign) and device button -> role, with dead zone and scale.

    A reading inside `dead_zone` counts as zero; outside it the rest of the range is rescaled to
    reach 1, so small motions stay small, then multiplied by `scale` and clipped to [-1, 1].
    """

    axes: Mapping[int, tuple[int, float]]
    buttons: Mapping[int, str]
    dead_zone: float = 0.1
    scale: float = 1.0

    @classmethod
    def from_params(cls, axes: Mapping[Any, str], buttons: Mapping[Any, str] | None = None,
                    dead_zone: float = 0.1, scale: float = 1.0) -> DeviceMapping:
        """From config: `axes: {1: -x, 0: -y}` and `buttons: {0: close, 7: estop}`."""
        parsed: dict[int, tuple[int, float]] = {}
        for key, target in axes.items():
            name = str(target).lstrip("+-")
            if name not in DIMS:
                raise ConfigError(f"teleop axis {key}: {target!r} is not one of "
                                  f"{', '.join(DIMS)} (with '-' to reverse it)")
            parsed[int(key)] = (DIMS[name], -1.0 if str(target).startswith("-") else 1.0)
        roles: dict[int, str] = {}
        for key, role in (buttons or {}).items():
            if role not in ROLES:
                raise ConfigError(f"teleop button {key}: {role!r} is not one of "
                                  f"{', '.join(sorted(ROLES))}")
            roles[int(key)] = str(role)
        if not 0.0 <= dead_zone < 1.0:
            raise ConfigError(f"teleop dead_zone must be in [0, 1), got {dead_zone}")
        if scale <= 0.0:
            raise ConfigError(f"teleop scale must be positive, got {scale}")
        return cls(parsed, roles, dead_zone, scale)

    def motion(self, values: Sequence[float]) -> np.ndarray:
        """`[dx, dy, dz, dyaw]` in [-1, 1] from the device's axis readings."""
        out = np.zeros(len(DIMS))
        for axis, (dim, sign) in self.axes.items():
            value = float(values[axis]) if axis < len(values) else 0.0
            if abs(value) <= self.dead_zone:
                continue
            magnitude = (abs(value) - self.dead_zone) / (1.0 - self.dead_zone)
            out[dim] += sign * np.sign(value) * magnitude * self.scale
        return np.clip(out, -1.0, 1.0)

    def roles(self, pressed: Iterable[int]) -> frozenset[str]:
        return frozenset(self.buttons[b] for b in pressed if b in self.buttons)


class Takeover:
    """Hysteresis of who is in control: the person from their first active reading, the policy
    again only after `release_after` idle readings in a row."""

    def __init__(self, release_after: int = 5) -> None:
        if release_after < 1:
            raise ConfigError(f"teleop release_after must be at least 1, got {release_after}")
        self.release_after = release_after
        self.active = False
        self._idle = 0

    def update(self, moving: bool) -> bool:
        if moving:
            self.active, self._idle = True, 0
        elif self.active:
            self._idle += 1
            self.active = self._idle < self.release_after
        return self.active


class DeviceTeleop(Teleop):
    """A device of axes and buttons driving `[dx, dy, dz, dyaw, gripper]` actions."""

    realtime = True

    def __init__(self, action_spec: ArraySpec, mapping: DeviceMapping,
                 release_after: int = 5) -> None:
        if action_spec.shape != (5,):
            raise ConfigError(f"{type(self).__name__} drives [dx, dy, dz, dyaw, gripper] "
                              f"actions; this robot's action is {action_spec}")
        self.action_spec, self.mapping = action_spec, mapping
        self.takeover = Takeover(release_after)
        self._gripper = -1.0  # open until the person closes it
        self._held: frozenset[str] = frozenset()

    @abstractmethod
    def poll(self) -> tuple[Sequence[float], frozenset[int]]:
        """The device's axis readings in [-1, 1] and the buttons pressed now."""

    def read(self) -> TeleopCommand | None:
        values, pressed = self.poll()
        motion = self.mapping.motion(values)
        roles = self.mapping.roles(pressed)
        new, self._held = roles - self._held, roles  # labels count once per press
        gripper = 1.0 if "close" in roles else -1.0 if "open" in roles else self._gripper
        moving = bool(np.any(motion)) or "takeover" in roles or gripper != self._gripper
        self._gripper = gripper
        takeover = self.takeover.update(moving)
        buttons = frozenset({ESTOP}) if "estop" in roles else frozenset()
        label = True if "success" in new else False if "failure" in new else None
        if not (takeover or buttons or label is not None):
            return None
        action = np.append(motion, gripper).astype(self.action_spec.dtype) if takeover else None
        return TeleopCommand(action, takeover, buttons, label)
