"""`robot-rl info`: what a run directory holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from robot_rl.commands import COMMANDS, Command, print_summary
from robot_rl.runtime.run_dir import RunDir, summarize


@COMMANDS.register("info")
class Info(Command):
    help = "Summarise a run directory: episodes, steps, updates, success rates, interventions."
    example = "robot-rl info runs/reach --json"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path, help="a run directory (run.dir of a session)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        print_summary(summarize(RunDir(args.run_dir)), args.json)
        return 0
