"""`robot-rl hal list|check|resources`: this node's hardware, whether a session can be placed on
it, and the resources a Ray node offers for it."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from hal import TELEOPS
from hal.inventory import Inventory
from hal.leases import FileLeaseStore, LeaseRecord, LeaseStore, default_lease_dir
from hal.placement import node_resources
from robot_rl.commands import COMMANDS, Command, add_action
from robot_rl.config import compose_session
from robot_rl.core import HardwareError
from robot_rl.runtime.build import local_inventory, plan_session


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


def check_units(names: list[str], inventory: Inventory, store: LeaseStore) -> list[str]:
    """The named units are here, healthy and free: one line saying so, else HardwareError."""
    entries = inventory.require(names)
    leased = [f"{e.unit.name} to {r.holder.describe()}" for e in entries
              if (r := store.current(e.unit.name)) is not None]
    if leased:
        raise HardwareError(f"leased: {'; '.join(leased)}")
    return [f"ok: {', '.join(e.unit.name for e in entries)} on {inventory.node}, all free"]


def check_session(overrides: list[str], inventory: Inventory, store: LeaseStore) -> list[str]:
    """The session these overrides compose can be placed here: its robots, learner and teleop."""
    cfg = compose_session(overrides)
    placement = plan_session(cfg, [inventory], store)
    teleop = (TELEOPS.get(cfg.teleop.name).unit_name(**cfg.teleop.params)
              if cfg.get("teleop") is not None else None)
    lines = placement.describe()
    if teleop:
        lines += [f"teleop   {e.unit.name:<16} on {e.unit.node}"
                  for e in inventory.require([teleop])]
    return [f"ok: the session can be placed on {inventory.node}", *lines]


@COMMANDS.register("hal")
class HalCommand(Command):
    help = ("List this node's hardware with its health and leases, check that a session can be "
            "placed on it, or print the resources its Ray node offers.")
    example = ("robot-rl hal list\n  robot-rl hal check cpu sim:small_arm arm0\n"
               "  robot-rl hal check 'robots={a: {arm: small_arm}, b: {arm: so101}}'\n"
               "  ray start --address=HEAD:6379 $(robot-rl hal resources)")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = add_action(sub, "list", "every unit found: type, model, metadata, health",
                             "robot-rl hal list --json --hardware lab.yaml")
        listing.add_argument("--json", action="store_true", help="print one JSON object")
        check = add_action(sub, "check", "exit 0 if every unit named is here, healthy and "
                           "free, and the session the overrides compose can be placed here "
                           "(its robots, learner and teleop); else name every problem and list "
                           "what was found",
                           "robot-rl hal check cpu sim:small_arm arm0\n  robot-rl hal check "
                           "'robots={a: {arm: small_arm}, b: {arm: so101}}' teleop=gamepad")
        check.add_argument("units", nargs="*", metavar="UNIT|key=value",
                           help="unit names as `hal list` shows them, and/or session overrides "
                           "(`teleop=gamepad`); no overrides and no names: the default session")
        resources = add_action(sub, "resources", "the `ray start` arguments that offer this "
                               "node's robots and GPUs to a session's placement",
                               "ray start --address=HEAD:6379 $(robot-rl hal resources)")
        resources.add_argument("--json", action="store_true",
                               help="print {num_gpus, resources} as one JSON object")
        for p in (listing, check, resources):
            p.add_argument("--hardware", type=Path, action="append", metavar="FILE",
                           help="hardware file declaring units (repeatable; default: "
                           "launch/hardware/*.yaml)")

    def run(self, args: argparse.Namespace) -> int:
        inventory = local_inventory(args.hardware or ())
        store = FileLeaseStore(default_lease_dir())
        if args.action == "resources":
            offered = node_resources(inventory)
            print(json.dumps(asdict(offered)) if args.json else
                  " ".join(offered.ray_start_args()))
        elif args.action == "list":
            leases = {e.unit.name: store.current(e.unit.name) for e in inventory.entries}
            if args.json:
                units = [{**e.as_dict(), "lease": None if (r := leases[e.unit.name]) is None
                          else {"holder": r.holder.describe(), "faulted": r.faulted}}
                         for e in inventory.entries]
                print(json.dumps({"node": inventory.node, "units": units}))
            else:
                print_table(inventory, leases)
        else:
            names = [a for a in args.units if "=" not in a]
            overrides = [a for a in args.units if "=" in a]
            lines = check_units(names, inventory, store) if names else []
            if overrides or not names:
                lines += check_session(overrides, inventory, store)
            print("\n".join(lines))
        return 0
