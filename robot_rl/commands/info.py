"""`robot-rl info`: what a run directory holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robot_rl.commands import COMMANDS, Command
from robot_rl.runtime.run_dir import RunDir, summarize


@COMMANDS.register("info")
class Info(Command):
    help = "Summarise a run directory: episodes, steps, updates, success rates, interventions."
    example = "robot-rl info runs/reach --json"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        info = summarize(RunDir(args.run_dir))
        if args.json:
            print(json.dumps(info))
        else:
            width = max(map(len, info))
            for key, value in info.items():
                print(f"{key:<{width}}  {value}")
        return 0
