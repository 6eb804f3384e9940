"""Placement: the node and unit each part of a session runs on, checked before anything moves.

Pure planning: a `PlacementSpec` (the session's `placement:` and robot kind) against the
inventories of the nodes gives a `Placement`, or one `PlacementError` listing every problem and
everything found. Units become scheduler resources here too (`node_resources`, `requests`), so
a node's operator can print them without Ray; `robot_rl.runtime.ray.placement` hands them to Ray.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hal.checkers import AcceleratorChecker
from hal.inventory import Entry, Inventory
from hal.leases import LeaseStore
from hal.units import Unit
from robot_rl.core import HardwareError

ROBOT_RESOURCE = "robot:"  # robot:<unit>: 1 on the node that hosts the robot (a shared
SHARED_CAPACITY = 1000.0  # unit, a sim arm any number of robots may simulate: this many)
GPU_RESOURCE = "gpu:"  # gpu:<index>: 1 per GPU of the node, beside Ray's own GPU count
HOST_RESOURCE = "host:"  # host:<node>: HOST_CAPACITY on every node, so a part can be pinned there
HOST_CAPACITY = 1000.0
PIN = 0.001  # what a part pinned to a host asks of its host resource
LEARNER_UNITS = "cpu | gpu | gpu:N"


class PlacementError(HardwareError):
    """The placement cannot run on the hardware found; the message lists what was found."""


@dataclass(frozen=True)
class PlacementSpec:
    """What a session asks for: its robots' units, the learner's unit, named groups of nodes.

    A reference is `unit` or `unit@where`, `where` a node or a group of `node_groups`.
    """

    robots: tuple[str, ...]
    robot_type: str  # the unit type the session's robot kind drives
    learner: str = "cpu"
    node_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Assignment:
    """One part of a session (`robot` or `learner`) on one unit; `pinned`: on that unit's node
    (else on any node that has such a unit: a learner on some node's CPU)."""

    part: str
    unit: Unit
    pinned: bool = True


@dataclass(frozen=True)
class Placement:
    """A checked plan: one assignment per robot, in the order asked, and the learner's."""

    robots: tuple[Assignment, ...]
    learner: Assignment

    def exclusive_units(self) -> list[str]:
        """The robots a session must lease before it drives them."""
        return [a.unit.name for a in self.robots if a.unit.exclusive]

    def describe(self) -> list[str]:
        return [f"{a.part:<8} {a.unit.name:<16} on {a.unit.node if a.pinned else 'any node'}"
                f"  ({a.unit.type}{', ' + a.unit.model if a.unit.model else ''})"
                for a in (*self.robots, self.learner)]


@dataclass
class _Planner:
    spec: PlacementSpec
    inventories: Sequence[Inventory]
    leases: LeaseStore | None
    problems: list[str] = field(default_factory=list)
    booked: dict[tuple[str, str], str] = field(default_factory=dict)  # (node, unit) -> by whom

    @staticmethod
    def split(ref: str) -> tuple[str, str | None]:
        """`unit@where` -> (unit, where); a bare unit -> (unit, None)."""
        unit, at, where = ref.rpartition("@")
        return (unit, where) if at else (ref, None)

    def candidates(self, ref: str, match: Callable[[Unit], bool]) -> list[Entry] | None:
        """The entries that `match` on the nodes `ref` allows, the local node's first; None
        (and the problem noted) where it names no node or group."""
        _, where = self.split(ref)
        if where is None:
            allowed = None
        elif where in self.spec.node_groups:
            allowed = set(self.spec.node_groups[where])
        elif any(inv.node == where for inv in self.inventories):
            allowed = {where}
        else:
            groups = ", ".join(self.spec.node_groups) or "none"
            self.problems.append(f"{ref}: no node or node group {where!r} (groups: {groups})")
            return None
        return [e for inv in self.inventories if allowed is None or inv.node in allowed
                for e in inv.entries if match(e.unit)]

    def choose(self, ref: str, entries: list[Entry] | None, who: str,
               book: bool = True) -> Entry | None:
        """The first healthy entry not booked yet (booked for `who` now, unless the unit serves
        every part, like the CPU); else note why none will do."""
        if entries is None:
            return None
        if not entries:
            self.problems.append(f"missing: {ref}")
            return None
        free = [e for e in entries if (e.unit.node, e.unit.name) not in self.booked]
        if not free:
            first = entries[0].unit
            self.problems.append(f"double-booked: {ref} ({who} and "
                                 f"{self.booked[first.node, first.name]})")
            return None
        healthy = [e for e in free if e.health.ok]
        if not healthy:
            e = free[0]
            self.problems.append(f"unhealthy: {e.unit.name} on {e.unit.node} "
                                 f"({e.health.status.value}: {e.health.message})")
            return None
        chosen = healthy[0]
        if book:
            self.booked[chosen.unit.node, chosen.unit.name] = who
        return chosen

    def leased(self, unit: Unit) -> None:
        record = self.leases.current(unit.name) if self.leases and unit.exclusive else None
        if record is not None:
            self.problems.append(f"leased: {unit.name} to {record.holder.describe()}")

    def robot(self, ref: str) -> Assignment | None:
        name, _ = self.split(ref)
        entries = self.candidates(ref, lambda u: u.name == name)
        shared = bool(entries) and not entries[0].unit.exclusive  # a sim arm: as many as wanted
        entry = self.choose(ref, entries, f"robot {ref}", book=not shared)
        if entry is None:
            return None
        unit = entry.unit
        if not unit.robot:
            self.problems.append(f"{ref} is a {unit.type}, not a robot")
        elif unit.type != self.spec.robot_type:
            self.problems.append(f"{ref} is a {unit.type} unit; this session's robot kind "
                                 f"drives {self.spec.robot_type} units")
        self.leased(unit)
        return Assignment("robot", unit)

    def learner(self) -> Assignment | None:
        ref = self.spec.learner
        name, where = self.split(ref)
        if name == "cpu":  # on the first node allowed, unless pinned: any node's CPU will do
            entries = self.candidates(ref, lambda u: u.name == name)
            entry = self.choose(ref, entries, "the learner", book=False)
            return None if entry is None else Assignment("learner", entry.unit, where is not None)
        index = name.removeprefix(GPU_RESOURCE)
        if name != "gpu" and not (name.startswith(GPU_RESOURCE) and index.isdigit()):
            self.problems.append(f"placement.learner={ref}: use {LEARNER_UNITS}, optionally "
                                 "@NODE or @GROUP")
            return None
        entries = self.candidates(ref, is_gpu if name == "gpu" else lambda u: u.name == name)
        entry = self.choose(ref, entries, "the learner")
        return None if entry is None else Assignment("learner", entry.unit)


def found_text(inventories: Sequence[Inventory]) -> str:
    """Every unit of every node with its health, in one line."""
    return "; ".join(
        f"{inv.node}: " + (", ".join(f"{e.unit.name} ({e.health.status.value})"
                                     for e in inv.entries) or "nothing")
        for inv in inventories)


def plan_placement(spec: PlacementSpec, inventories: Sequence[Inventory],
                   leases: LeaseStore | None = None) -> Placement:
    """Each robot on its unit and the learner on its unit; PlacementError naming every unit
    missing, double-booked, unhealthy, of the wrong type or leased to another session."""
    planner = _Planner(spec, inventories, leases)
    robots = [planner.robot(ref) for ref in spec.robots]
    learner = planner.learner()
    if planner.problems or learner is None or None in robots:
        raise PlacementError(f"placement: {'; '.join(planner.problems)}. "
                             f"Found: {found_text(inventories)}")
    return Placement(tuple(a for a in robots if a is not None), learner)


@dataclass(frozen=True)
class NodeResources:
    """What a node offers a scheduler: its GPU count and a custom resource per unit."""

    num_gpus: int
    resources: dict[str, float]

    def ray_start_args(self) -> list[str]:
        """The arguments `ray start` needs to offer them (compact JSON: safe to word-split)."""
        return [f"--num-gpus={self.num_gpus}",
                f"--resources={json.dumps(self.resources, separators=(',', ':'))}"]


def is_gpu(unit: Unit) -> bool:
    return unit.type == AcceleratorChecker.type and unit.name.startswith(GPU_RESOURCE)


def node_resources(inventory: Inventory) -> NodeResources:
    """Every robot and GPU that is there (healthy or not: placement checks health when a session
    starts) as resources of this node, and the node itself, so parts can be pinned to it."""
    units = [e.unit for e in inventory.entries]
    resources = {HOST_RESOURCE + inventory.node: HOST_CAPACITY}
    resources.update({ROBOT_RESOURCE + u.name: 1.0 if u.exclusive else SHARED_CAPACITY
                      for u in units if u.robot})
    gpus = [u for u in units if is_gpu(u)]
    resources.update({u.name: 1.0 for u in gpus})
    return NodeResources(len(gpus), resources)


def requests(assignment: Assignment) -> tuple[int, dict[str, float]]:
    """The GPUs and custom resources a part asks for: its robot or its GPU, on its node."""
    unit = assignment.unit
    wanted = {HOST_RESOURCE + unit.node: PIN} if assignment.pinned else {}
    if unit.robot:
        wanted[ROBOT_RESOURCE + unit.name] = 1.0
    gpus = int(is_gpu(unit))
    if gpus:
        wanted[unit.name] = 1.0
    return gpus, wanted
