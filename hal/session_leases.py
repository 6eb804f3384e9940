"""A session's hold on its robots: every exclusive one leased at once, kept by heartbeats and
released at the end; each env worker watches its robot through a view of the session's lease.

    with SessionLeases(store, placement.exclusive_units(), session="reach-7") as leases:
        # in each env worker (another process), with leases.view(unit) passed to it:
        monitor = HealthMonitor(on_fault=tell_the_session).start()
        monitor.watch(safe_robot, view)
        ...
        leases.faults()  # {unit: why} as the workers marked them
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hal.leases import Holder, Lease, LeaseConflict, LeaseLost, LeaseStore
from robot_rl.core import HardwareError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseView:
    """The session's lease on one unit, as another process of the session (the robot's env
    worker) sees it: lost once the session no longer holds it; `mark_faulted` writes to it."""

    store: LeaseStore
    unit: str
    holder: Holder

    @property
    def lost(self) -> str | None:
        try:
            record = self.store.current(self.unit)
        except HardwareError as exc:
            return str(exc)
        if record is None:
            return (f"the session's lease on {self.unit} expired: no heartbeat within "
                    f"{self.store.ttl_s:g} s (is the session alive?)")
        if record.holder != self.holder:
            return f"{self.unit} is now leased to {record.holder.describe()}"
        return None

    def mark_faulted(self, reason: str) -> None:
        try:
            self.store.renew(self.unit, self.holder, faulted=reason)
        except LeaseLost as exc:  # the hold does not depend on it; the next poll reports it
            log.warning("%s: cannot mark the lease faulted: %s", self.unit, exc)


class SessionLeases:
    """Leases on every unit of a session, taken all at once (in name order, so two sessions
    asking for the same units cannot each get half) or none: LeaseConflict naming each holder."""

    def __init__(self, store: LeaseStore, units: Sequence[str],
                 session: str | None = None) -> None:
        self.store = store
        self.holder = Holder.this_process(session)
        self.leases: dict[str, Lease] = {}
        wanted = sorted(set(units))
        for i, unit in enumerate(wanted):
            try:
                self.leases[unit] = Lease(store, unit, self.holder, on_lost=self._lost)
            except LeaseConflict as exc:
                self.release()
                others = [f"{u} is leased to {r.holder.describe()}" for u in wanted[i + 1:]
                          if (r := store.current(u)) is not None]
                raise LeaseConflict(f"session {self.holder.session} cannot start: "
                                    f"{'; '.join([str(exc), *others])}") from None

    @staticmethod
    def _lost(unit: str, reason: str) -> None:
        log.error("the session lost its lease on %s: %s; its worker holds the robot", unit,
                  reason)

    def view(self, unit: str) -> LeaseView:
        """What the env worker of `unit` watches (it pickles: it crosses to that process)."""
        if unit not in self.leases:
            raise HardwareError(f"{unit} is not leased by session {self.holder.session}; "
                                f"its units: {', '.join(self.leases) or 'none'}")
        return LeaseView(self.store, unit, self.holder)

    def faults(self) -> dict[str, str]:
        """The units marked faulted (by their workers' health watch), and why."""
        records = {unit: self.store.current(unit) for unit in self.leases}
        return {u: r.faulted for u, r in records.items()
                if r is not None and r.holder == self.holder and r.faulted}

    def lost(self) -> dict[str, str]:
        """The units whose lease this session lost (it stalled past the ttl), and why."""
        return {u: lease.lost for u, lease in self.leases.items() if lease.lost is not None}

    def release(self) -> None:
        """Give every unit back (at the session's end; robots are held by their workers)."""
        for lease in self.leases.values():
            lease.release()
        self.leases.clear()

    def __enter__(self) -> SessionLeases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
