"""V4L2 cameras: every `/dev/video*` capture node, and cameras declared by serial or device."""

from __future__ import annotations

import fcntl
import glob
import os
import struct
from dataclasses import replace
from pathlib import Path

from hal.checker import CHECKERS, Checker
from hal.robot import Health, HealthStatus
from hal.units import Node, Unit, declared_unit
from robot_rl.core import HardwareError

VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes
CAP_STRUCT = struct.Struct("<16s32s32sIII3I")  # driver, card, bus_info, version, caps, device_caps
V4L2_CAP_VIDEO_CAPTURE = 0x1
V4L2_CAP_DEVICE_CAPS = 0x80000000
BY_ID = "/dev/v4l/by-id"


def query_capabilities(device: str) -> dict[str, str | bool]:
    """The driver's answer to VIDIOC_QUERYCAP for `device`; HardwareError if it gives none."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        raise HardwareError(f"{device}: cannot open: {exc.strerror}") from None
    try:
        raw = fcntl.ioctl(fd, VIDIOC_QUERYCAP, bytes(CAP_STRUCT.size))
    except OSError as exc:
        raise HardwareError(f"{device}: not a V4L2 device ({exc.strerror})") from None
    finally:
        os.close(fd)
    driver, card, bus, _, caps, device_caps, *_ = CAP_STRUCT.unpack(raw)
    effective = device_caps if caps & V4L2_CAP_DEVICE_CAPS else caps
    return {"driver": driver.rstrip(b"\0").decode(), "card": card.rstrip(b"\0").decode(),
            "bus": bus.rstrip(b"\0").decode(), "capture": bool(effective & V4L2_CAP_VIDEO_CAPTURE)}


def _by_serial(serial: str) -> str | None:
    """The capture node whose udev id names `serial` (`/dev/v4l/by-id/...<serial>...-index0`)."""
    for link in sorted(glob.glob(f"{BY_ID}/*{serial}*-video-index0")):
        return os.path.realpath(link)
    return None


@CHECKERS.register("camera")
class CameraChecker(Checker):
    """`video0`, ... for each device node; declared cameras (`serial_env: CAM0_SERIAL`) by name."""

    type = "camera"
    pattern = "/dev/video*"

    def discover(self, node: Node) -> list[Unit]:
        units = []
        for device in sorted(glob.glob(self.pattern)):
            name_file = Path("/sys/class/video4linux") / Path(device).name / "name"
            model = name_file.read_text().strip() if name_file.exists() else ""
            units.append(Unit(Path(device).name, self.type, node.name, model, {"device": device}))
        for declared in node.declared_of(self.type):
            unit = declared_unit(declared, node)
            if not unit.problem and "device" not in unit.meta and "serial" in unit.meta:
                device = _by_serial(str(unit.meta["serial"]))
                meta = {**unit.meta, "device": device} if device else unit.meta
                problem = "" if device else (f"{unit.name}: no camera with serial "
                                             f"{unit.meta['serial']} under {BY_ID}")
                unit = replace(unit, meta=meta, problem=problem)
            units.append(unit)
        return units

    def validate(self, unit: Unit) -> Health:
        if "device" not in unit.meta:
            raise HardwareError(f"{unit.name}: a camera needs `device`, `serial` or their `_env`")
        caps = query_capabilities(str(unit.meta["device"]))
        if not caps["capture"]:
            return Health(HealthStatus.DEGRADED, f"{caps['card']}: a metadata node, not capture")
        return Health(HealthStatus.OK, f"{caps['card']} ({caps['driver']}, {caps['bus']})")
