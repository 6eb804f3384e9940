"""`robot-rl hal list|check`: the hardware of this node, and whether a session's units are there."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hal.hardware_file import load_hardware
from hal.inventory import Inventory, take_inventory
from hal.units import Node
from robot_rl.commands import COMMANDS, Command
from robot_rl.config import config_dir


def hardware_files(given: list[Path] | None) -> list[Path]:
    """The `--hardware` files, else every `launch/hardware/*.yaml` of the config tree."""
    if given:
        return given
    return sorted((config_dir() / "hardware").glob("*.yaml"))


def print_table(inventory: Inventory) -> None:
    rows = [("NAME", "TYPE", "MODEL", "HEALTH", "DETAILS")]
    for e in inventory.entries:
        details = " ".join(f"{k}={v}" for k, v in e.unit.meta.items())
        message = f"{e.health.message}  [{details}]" if details else e.health.message
        rows.append((e.unit.name, e.unit.type, e.unit.model[:32], e.health.status.value,
                     message))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"node {inventory.node}")
    for row in rows:
        print("  ".join(f"{c:<{w}}" for c, w in zip(row[:4], widths, strict=True)), row[4])


@COMMANDS.register("hal")
class HalCommand(Command):
    help = "List this node's hardware with its health, or check that a session's units are usable."
    example = ("robot-rl hal list\n  robot-rl hal list --json --hardware lab.yaml\n"
               "  robot-rl hal check cpu sim:small_arm arm0")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = sub.add_parser("list", help="every unit found: type, model, metadata, health")
        listing.add_argument("--json", action="store_true", help="print one JSON object")
        check = sub.add_parser("check", help="exit 0 if every named unit is here and healthy, "
                               "else name what is missing or unhealthy and what was found")
        check.add_argument("units", nargs="+", help="unit names as `hal list` shows them")
        for p in (listing, check):
            p.add_argument("--hardware", type=Path, action="append", metavar="FILE",
                           help="hardware file declaring units (repeatable; default: "
                           "launch/hardware/*.yaml)")

    def run(self, args: argparse.Namespace) -> int:
        inventory = take_inventory(Node.local(load_hardware(hardware_files(args.hardware))))
        if args.action == "list":
            if args.json:
                print(json.dumps({"node": inventory.node,
                                  "units": [e.as_dict() for e in inventory.entries]}))
            else:
                print_table(inventory)
            return 0
        entries = inventory.require(args.units)
        print(f"ok: {', '.join(e.unit.name for e in entries)} on {inventory.node}")
        return 0
