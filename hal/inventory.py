"""The inventory of a node: every unit its checkers find, with type, model, metadata and health."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import hal.checkers  # noqa: F401 - registers the built-in checkers
from hal.checker import CHECKERS, Checker
from hal.probe import probe_all
from hal.robot import Health, HealthStatus
from hal.units import Node, Unit
from robot_rl.core import HardwareError


@dataclass(frozen=True)
class Entry:
    """One unit and what its checker said about it."""

    unit: Unit
    health: Health

    def as_dict(self) -> dict[str, Any]:
        u = self.unit
        return {"name": u.name, "type": u.type, "node": u.node, "model": u.model,
                "meta": dict(u.meta), "robot": u.robot, "exclusive": u.exclusive,
                "health": self.health.status.value, "message": self.health.message}


@dataclass(frozen=True)
class Inventory:
    """What one node holds; `require` turns a session's list of units into a go or a clear no."""

    node: str
    entries: tuple[Entry, ...]

    def get(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.unit.name == name), None)

    def require(self, names: Iterable[str]) -> list[Entry]:
        """The entries of `names`; HardwareError naming what is missing or unhealthy, if any."""
        names = list(names)
        missing = [n for n in names if self.get(n) is None]
        entries = [e for n in names if (e := self.get(n)) is not None]
        sick = [f"{e.unit.name} ({e.health.status.value}: {e.health.message})"
                for e in entries if not e.health.ok]
        if not (missing or sick):
            return entries
        problems = ([f"missing: {', '.join(missing)}"] if missing else []) + (
            [f"unhealthy: {'; '.join(sick)}"] if sick else [])
        found = ", ".join(e.unit.name for e in self.entries) or "nothing"
        raise HardwareError(f"{'; '.join(problems)} on {self.node} (found: {found})")


def take_inventory(node: Node, checkers: Sequence[Checker] | None = None) -> Inventory:
    """Discover and validate every unit of `checkers` (default: every registered one) at once.

    Probes run in parallel under each checker's timeout; one that fails or overruns yields an
    unhealthy entry with the reason, never an exception and never a hang.
    """
    every = checkers is None
    checkers = [CHECKERS.get(t)() for t in CHECKERS.names()] if checkers is None else checkers
    found = probe_all([(f"discovering {c.type}", lambda c=c: c.discover(node), c.timeout_s)
                       for c in checkers])
    rows: list[tuple[Unit, Checker | Health]] = []  # a unit, and who checks it or its verdict
    for checker, units in zip(checkers, found, strict=True):
        if isinstance(units, HardwareError):
            rows.append((Unit(checker.type, checker.type, node.name),
                         Health(HealthStatus.FAULT, f"discovery failed: {units}")))
            continue
        rows += [(u, Health(HealthStatus.FAULT, u.problem) if u.problem else checker)
                 for u in units]
    known = {c.type for c in checkers}
    for declared in node.declared if every else ():
        if declared.type not in known and declared.node in (None, node.name):
            rows.append((Unit(declared.name, declared.type, node.name),
                         Health(HealthStatus.FAULT, f"no checker for type {declared.type!r}; "
                                f"known: {', '.join(sorted(known))}")))
    checked = iter(probe_all([(f"checking {u.name}", lambda u=u, c=c: c.validate(u), c.timeout_s)
                              for u, c in rows if isinstance(c, Checker)]))
    entries = []
    for unit, verdict in rows:
        health = verdict if isinstance(verdict, Health) else next(checked)
        if isinstance(health, HardwareError):
            health = Health(HealthStatus.FAULT, str(health))
        entries.append(Entry(unit, health))
    return Inventory(node.name, tuple(entries))
