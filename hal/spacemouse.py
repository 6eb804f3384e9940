"""3Dconnexion SpaceMice through hidapi: their HID reports decoded; `hid` is imported only here.

Reports (little-endian int16 axes, about ±350 at full deflection):
report 1 = translation x, y, z (6 bytes; 12 bytes with rotation on newer models),
report 2 = rotation rx, ry, rz, report 3 = a bitmask of the buttons.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from hal.device_teleop import DeviceMapping, DeviceTeleop
from hal.robot import Robot
from hal.teleop import TELEOPS
from robot_rl.core import ArraySpec, HardwareError

VENDOR_3DCONNEXION = 0x256F  # every product of this vendor id is a 3Dconnexion device
VENDOR_LOGITECH = 0x046D  # older SpaceMice were sold under Logitech's id
LOGITECH_SPACEMICE = frozenset({0xC603, 0xC605, 0xC606, 0xC621, 0xC623, 0xC625, 0xC626, 0xC627,
                                0xC628, 0xC629, 0xC62B})
FULL_SCALE = 350.0
TRANSLATION, ROTATION, BUTTONS = 1, 2, 3
MAX_REPORTS_PER_READ = 64  # drain at most this many queued reports per control step


class HidDevice(Protocol):
    """The part of `hid.device` a SpaceMouse teleop reads (opened, non-blocking)."""

    def read(self, max_length: int) -> list[int]: ...
    def close(self) -> None: ...


def _hid() -> ModuleType:
    try:
        import hid
    except ImportError:
        raise HardwareError(
            "teleop=spacemouse needs hidapi: pip install 'robot-rl[teleop]'") from None
    return hid


def is_spacemouse(vendor_id: int, product_id: int) -> bool:
    return vendor_id == VENDOR_3DCONNEXION or (
        vendor_id == VENDOR_LOGITECH and product_id in LOGITECH_SPACEMICE)


def list_spacemice() -> list[dict[str, Any]]:
    """Every SpaceMouse HID interface hidapi sees (path, product, serial); none without hidapi."""
    try:
        hid = _hid()
    except HardwareError:
        return []
    found = []
    for dev in hid.enumerate():
        if is_spacemouse(dev["vendor_id"], dev["product_id"]):
            path = dev["path"].decode() if isinstance(dev["path"], bytes) else str(dev["path"])
            found.append({"path": path, "product": dev.get("product_string") or "SpaceMouse",
                          "serial": dev.get("serial_number") or "",
                          "vendor_id": dev["vendor_id"], "product_id": dev["product_id"]})
    return found


def open_spacemouse(index: int = 0) -> HidDevice:
    """The `index`-th SpaceMouse, opened non-blocking."""
    found = list_spacemice()
    if index >= len(found):
        raise HardwareError(f"teleop=spacemouse: no SpaceMouse {index}; hidapi sees {len(found)} "
                            "(plug one in; on Linux its /dev/hidraw* must be readable by you, "
                            "e.g. through a udev rule)")
    device = _hid().device()
    try:
        device.open_path(found[index]["path"].encode())
    except OSError as exc:
        raise HardwareError(f"teleop=spacemouse: cannot open {found[index]['path']}: {exc}; "
                            "check the permissions of its /dev/hidraw*") from None
    device.set_nonblocking(1)
    return device


class SpaceMouseState:
    """The six axes in [-1, 1] (tx, ty, tz, rx, ry, rz) and the buttons, updated per report."""

    def __init__(self) -> None:
        self.axes = np.zeros(6)
        self.buttons: frozenset[int] = frozenset()

    def update(self, report: bytes) -> None:
        """Apply one HID report; a report of another id or too short is ignored."""
        kind, body = report[0], report[1:]
        if kind == TRANSLATION and len(body) >= 12:
            self.axes[:] = self._axes(body[:12])
        elif kind == TRANSLATION and len(body) >= 6:
            self.axes[:3] = self._axes(body[:6])
        elif kind == ROTATION and len(body) >= 6:
            self.axes[3:] = self._axes(body[:6])
        elif kind == BUTTONS and body:
            mask = int.from_bytes(body, "little")
            self.buttons = frozenset(i for i in range(8 * len(body)) if mask >> i & 1)

    @staticmethod
    def _axes(raw: bytes) -> np.ndarray:
        values = struct.unpack(f"<{len(raw) // 2}h", raw)
        return np.clip(np.asarray(values, dtype=np.float64) / FULL_SCALE, -1.0, 1.0)


@TELEOPS.register("spacemouse")
class SpaceMouseTeleop(DeviceTeleop):
    """A SpaceMouse: its cap moves and turns the end effector, its buttons do what config says."""

    def __init__(self, action_spec: ArraySpec, mapping: DeviceMapping, device: HidDevice,
                 release_after: int = 5) -> None:
        super().__init__(action_spec, mapping, release_after)
        self.device = device
        self.state = SpaceMouseState()

    @classmethod
    def unit_name(cls, index: int = 0, **params: Any) -> str:
        return f"spacemouse:{index}"

    @classmethod
    def for_robot(cls, robot: Robot, seed: int, *, index: int = 0,
                  axes: Mapping[Any, str] | None = None, buttons: Mapping[Any, str] | None = None,
                  dead_zone: float = 0.1, scale: float = 1.0,
                  release_after: int = 5) -> SpaceMouseTeleop:
        mapping = DeviceMapping.from_params(axes or {}, buttons, dead_zone, scale)
        return cls(robot.action_spec, mapping, open_spacemouse(index), release_after)

    def poll(self) -> tuple[Sequence[float], frozenset[int]]:
        for _ in range(MAX_REPORTS_PER_READ):
            data = self.device.read(64)
            if not data:
                break
            self.state.update(bytes(data))
        return self.state.axes, self.state.buttons

    def close(self) -> None:
        self.device.close()
