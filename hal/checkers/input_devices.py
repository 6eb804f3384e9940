"""Input devices: gamepads (through pygame) and SpaceMice (through hidapi), where installed."""

from __future__ import annotations

from hal import gamepad, spacemouse
from hal.checker import CHECKERS, Checker
from hal.robot import Health, HealthStatus
from hal.units import Node, Unit


@CHECKERS.register("input_device")
class InputDeviceChecker(Checker):
    """`gamepad:N` and `spacemouse:N`; none where pygame / hidapi are not installed."""

    type = "input_device"
    timeout_s = 5.0

    def discover(self, node: Node) -> list[Unit]:
        units = [Unit(f"gamepad:{pad['index']}", self.type, node.name, str(pad["name"]), pad)
                 for pad in gamepad.list_gamepads()]
        units += [Unit(f"spacemouse:{i}", self.type, node.name, str(dev["product"]), dev)
                  for i, dev in enumerate(spacemouse.list_spacemice())]
        return units

    def validate(self, unit: Unit) -> Health:
        found = (gamepad.list_gamepads() if unit.name.startswith("gamepad:")
                 else spacemouse.list_spacemice())
        key = "guid" if unit.name.startswith("gamepad:") else "path"
        if any(dev[key] == unit.meta[key] for dev in found):
            return Health(HealthStatus.OK)
        return Health(HealthStatus.DISCONNECTED, f"{unit.model} is no longer plugged in")
