"""`robot-rl sim-server TASK`: a MuJoCo arm in its own process, reached like a real arm.

The sim runs at its control rate behind the same edge protocol a real arm's controller PC
speaks: it dials the gateway, streams every step exactly once, and is driven by the policy the
gateway serves (remote inference with a per-step deadline, safe hold when the link is down).
"""

from __future__ import annotations

import argparse

from robot_rl.commands import COMMANDS
from robot_rl.commands.edge import EdgeCommand


@COMMANDS.register("sim-server")
class SimServer(EdgeCommand):
    help = "Serve a MuJoCo arm doing TASK to a gateway, over the edge protocol of a real arm."
    example = ("robot-rl sim-server --gateway ws://127.0.0.1:8765 --token-file ~/.robot_rl/token "
               "pick_cube robot.cameras=[wrist_cam,side_cam]")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("task", help="reach, push, pick_cube, peg_insertion, ...")
        super().add_arguments(parser)
        parser.set_defaults(policy="remote")

    def run(self, args: argparse.Namespace) -> int:
        args.overrides = [f"task={args.task}", *args.overrides]
        return super().run(args)
