"""`robot-rl status RUN`: what a session is doing now, from any shell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robot_rl.commands import COMMANDS, Command
from robot_rl.core import RunDirError
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session_status import describe, read_status


@COMMANDS.register("status")
class Status(Command):
    help = ("Show a session's parts (state, restarts) and robots (health, lease, weights "
            "version), live or as it last was.")
    example = "robot-rl status runs/reach --json"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path, help="a run directory (run.dir of a session)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        status = read_status(RunDir(args.run_dir))
        if status is None:
            raise RunDirError(f"{args.run_dir} has no session status yet: a session writes it "
                              "once it runs (robot-rl train run.dir=...)")
        print(json.dumps(status) if args.json else "\n".join(describe(status)))
        return 0
