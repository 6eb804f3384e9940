"""3Dconnexion SpaceMice through hidapi; `hid` is imported only here."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from robot_rl.core import HardwareError

VENDOR_3DCONNEXION = 0x256F  # every product of this vendor id is a 3Dconnexion device
VENDOR_LOGITECH = 0x046D  # older SpaceMice were sold under Logitech's id
LOGITECH_SPACEMICE = frozenset({0xC603, 0xC605, 0xC606, 0xC621, 0xC623, 0xC625, 0xC626, 0xC627,
                                0xC628, 0xC629, 0xC62B})


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
