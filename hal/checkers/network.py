"""Network robots declared in a hardware file, checked by a TCP connect with a timeout."""

from __future__ import annotations

import socket
import time

from hal.checker import CHECKERS, Checker
from hal.robot import Health, HealthStatus
from hal.units import Node, Unit, declared_unit
from robot_rl.core import HardwareError

DEFAULT_CONNECT_TIMEOUT_S = 1.0


@CHECKERS.register("network_robot")
class NetworkRobotChecker(Checker):
    """A robot controller at `host:port` (`host_env: VAR` reads the host on its own node)."""

    type = "network_robot"
    timeout_s = 5.0

    def discover(self, node: Node) -> list[Unit]:
        return [declared_unit(d, node, robot=True, exclusive=True)
                for d in node.declared_of(self.type)]

    def validate(self, unit: Unit) -> Health:
        for key in ("host", "port"):
            if key not in unit.meta:
                raise HardwareError(f"{unit.name}: a network_robot needs `{key}` (or `{key}_env`)")
        try:
            host, port = str(unit.meta["host"]), int(unit.meta["port"])
            timeout = float(unit.meta.get("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S))
        except (TypeError, ValueError):
            raise HardwareError(f"{unit.name}: `port` must be a number and `connect_timeout_s` "
                                f"seconds, got {unit.meta['port']!r}, "
                                f"{unit.meta.get('connect_timeout_s')!r}") from None
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except ConnectionRefusedError:
            return Health(HealthStatus.DISCONNECTED, f"tcp {host}:{port} refused the connection: "
                          "is the robot's controller on and listening?")
        except TimeoutError:
            return Health(HealthStatus.DISCONNECTED,
                          f"no answer from tcp {host}:{port} within {timeout:g} s")
        except OSError as exc:
            return Health(HealthStatus.DISCONNECTED, f"tcp {host}:{port}: {exc}")
        ms = (time.monotonic() - started) * 1000
        return Health(HealthStatus.OK, f"tcp {host}:{port} open ({ms:.1f} ms)")
