"""The health monitor: polls each leased robot; a failing one is held and its session told."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hal.leases import LeaseHandle
from hal.robot import Health, HealthStatus
from hal.safety import SafeRobot
from robot_rl.core import HardwareError

log = logging.getLogger(__name__)

FAULT_PREFIX = "health monitor: "


@dataclass
class _Watched:
    robot: SafeRobot
    lease: LeaseHandle | None
    faulted: str | None = None  # why the monitor holds it; None while it is in service
    recovered: bool = False


class HealthMonitor:
    """Polls `robot.inner.health()` of each watched robot every `poll_s` seconds on one thread.

    A robot whose health fails (driver error, e-stop, lost lease) is put in safe hold through
    its e-stop latch, its lease is marked faulted and `on_fault(robot_id, health)` is called;
    the others go on. When it reports OK again `on_recover(robot_id)` is called, and the session
    may `rejoin` it. The monitor never releases a hold by itself.
    """

    def __init__(self, poll_s: float = 0.5,
                 on_fault: Callable[[str, Health], None] | None = None,
                 on_recover: Callable[[str], None] | None = None) -> None:
        self.poll_s = poll_s
        self.on_fault, self.on_recover = on_fault, on_recover
        self._watched: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, robot: SafeRobot, lease: LeaseHandle | None = None) -> None:
        """Poll `robot` from now on; a lost `lease` counts as a failed health check."""
        with self._lock:
            self._watched[robot.robot_id] = _Watched(robot, lease)

    def faulted(self, robot_id: str) -> str | None:
        """Why the monitor holds `robot_id`, or None while it is in service."""
        return self._watched[robot_id].faulted

    def _health(self, w: _Watched) -> Health:
        lost = w.lease.lost if w.lease is not None else None
        if lost is not None:
            return Health(HealthStatus.FAULT, f"lease lost: {lost}")
        try:
            return w.robot.inner.health()
        except Exception as exc:  # noqa: BLE001 - a driver that throws is a faulted robot
            return Health(HealthStatus.FAULT, f"health() raised {type(exc).__name__}: {exc}")

    def poll_once(self) -> None:
        """One round over every watched robot (the thread calls this every `poll_s`)."""
        with self._lock:
            watched = list(self._watched.values())
        for w in watched:
            health = self._health(w)
            if not health.ok and w.faulted is None:
                self._fault(w, health)
            elif health.ok and w.faulted is not None and not w.recovered:
                w.recovered = True
                log.warning("%s reports ok again; rejoin it to put it back in service",
                            w.robot.robot_id)
                if self.on_recover is not None:
                    self.on_recover(w.robot.robot_id)

    def _fault(self, w: _Watched, health: Health) -> None:
        reason = f"{health.status.value}: {health.message}"
        w.faulted, w.recovered = reason, False
        log.warning("%s is unhealthy (%s): holding it", w.robot.robot_id, reason)
        try:
            w.robot.estop(FAULT_PREFIX + reason)
        except Exception as exc:  # noqa: BLE001 - the latch is set before the hold is sent
            log.error("%s: the hold action failed: %s", w.robot.robot_id, exc)
        if w.lease is not None and w.lease.lost is None:
            w.lease.mark_faulted(reason)
        if self.on_fault is not None:
            self.on_fault(w.robot.robot_id, health)

    def rejoin(self, robot_id: str) -> None:
        """Put a recovered robot back in service; HardwareError if it is still unhealthy."""
        w = self._watched[robot_id]
        health = self._health(w)
        if not health.ok:
            raise HardwareError(f"{robot_id} cannot rejoin: {health.status.value} "
                                f"{health.message}")
        if w.robot.estop_reason is not None and w.robot.estop_reason.startswith(FAULT_PREFIX):
            w.robot.release()
        if w.lease is not None:
            w.lease.mark_faulted("")
        w.faulted, w.recovered = None, False

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll_once()

    def start(self) -> HealthMonitor:
        self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, 2 * self.poll_s))

    def __enter__(self) -> HealthMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
