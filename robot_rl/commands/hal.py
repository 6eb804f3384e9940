"""`robot-rl hal list|check`: the hardware of this node, and whether a session's units are there."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hal import TELEOPS
from hal.hardware_file import load_hardware
from hal.inventory import Inventory, take_inventory
from hal.leases import FileLeaseStore, LeaseRecord, default_lease_dir
from hal.units import Node
from robot_rl.commands import COMMANDS, Command, add_action
from robot_rl.config import compose_session, config_dir
from robot_rl.core import HardwareError


def session_units(overrides: list[str]) -> list[str]:
    """The units the session these overrides compose needs: its sim arm and its teleop device."""
    cfg = compose_session(overrides)
    units = [f"sim:{cfg.robot.arm}"] if cfg.robot.get("arm") else []
    if cfg.get("teleop") is not None:
        unit = TELEOPS.get(cfg.teleop.name).unit_name(**cfg.teleop.params)
        units += [unit] if unit else []
    return units


def hardware_files(given: list[Path] | None) -> list[Path]:
    """The `--hardware` files, else every `launch/hardware/*.yaml` of the config tree."""
    if given:
        return given
    return sorted((config_dir() / "hardware").glob("*.yaml"))


def lease_text(record: LeaseRecord | None) -> str:
    if record is None:
        return "free"
    text = f"{record.holder.session} (pid {record.holder.pid} on {record.holder.host})"
    return f"{text}, faulted" if record.faulted else text


def print_table(inventory: Inventory, leases: dict[str, LeaseRecord | None]) -> None:
    rows = [("NAME", "TYPE", "MODEL", "HEALTH", "LEASE", "DETAILS")]
    for e in inventory.entries:
        details = " ".join(f"{k}={v}" for k, v in e.unit.meta.items())
        message = f"{e.health.message}  [{details}]" if details else e.health.message
        rows.append((e.unit.name, e.unit.type, e.unit.model[:32], e.health.status.value,
                     lease_text(leases[e.unit.name]), message))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    print(f"node {inventory.node}")
    for row in rows:
        print("  ".join(f"{c:<{w}}" for c, w in zip(row[:5], widths, strict=True)), row[5],
              sep="  ")


@COMMANDS.register("hal")
class HalCommand(Command):
    help = ("List this node's hardware with its health and leases, or check that a session's "
            "units are here, healthy and free.")
    example = ("robot-rl hal list\n  robot-rl hal list --json --hardware lab.yaml\n"
               "  robot-rl hal check cpu sim:small_arm arm0\n  robot-rl hal check teleop=gamepad")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = add_action(sub, "list", "every unit found: type, model, metadata, health",
                             "robot-rl hal list --json --hardware lab.yaml")
        listing.add_argument("--json", action="store_true", help="print one JSON object")
        check = add_action(sub, "check", "exit 0 if every unit named, or needed by the session "
                           "the overrides compose, is here, healthy and free; else name what is "
                           "not and list what was found",
                           "robot-rl hal check cpu sim:small_arm arm0\n  robot-rl hal check "
                           "teleop=gamepad")
        check.add_argument("units", nargs="*", metavar="UNIT|key=value",
                           help="unit names as `hal list` shows them, and/or session overrides "
                           "(`teleop=gamepad`); none: the default session's units")
        for p in (listing, check):
            p.add_argument("--hardware", type=Path, action="append", metavar="FILE",
                           help="hardware file declaring units (repeatable; default: "
                           "launch/hardware/*.yaml)")

    def run(self, args: argparse.Namespace) -> int:
        declared = load_hardware(hardware_files(args.hardware))
        names = []
        if args.action == "check":
            overrides = [a for a in args.units if "=" in a]
            names = [a for a in args.units if "=" not in a]
            if overrides or not names:
                names += [u for u in session_units(overrides) if u not in names]
        inventory = take_inventory(Node.local(declared))
        store = FileLeaseStore(default_lease_dir())
        if args.action == "list":
            leases = {e.unit.name: store.current(e.unit.name) for e in inventory.entries}
            if args.json:
                units = [{**e.as_dict(), "lease": None if (r := leases[e.unit.name]) is None
                          else {"holder": r.holder.describe(), "faulted": r.faulted}}
                         for e in inventory.entries]
                print(json.dumps({"node": inventory.node, "units": units}))
            else:
                print_table(inventory, leases)
            return 0
        entries = inventory.require(names)
        leased = [f"{e.unit.name} to {r.holder.describe()}" for e in entries
                  if (r := store.current(e.unit.name)) is not None]
        if leased:
            raise HardwareError(f"leased: {'; '.join(leased)}")
        print(f"ok: {', '.join(e.unit.name for e in entries)} on {inventory.node}, all free")
        return 0
