"""The `robot-rl` command: sub-commands registered in robot_rl.commands; errors in one line."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from importlib import metadata

from robot_rl.commands import BUILTIN, COMMANDS
from robot_rl.core import RobotRLError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robot-rl",
        description="Online policy learning on real and simulated robot arms.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version",
                        version=f"robot-rl {metadata.version('robot-rl')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in BUILTIN:
        importlib.import_module(f"robot_rl.commands.{module}")
    for name in COMMANDS.names():
        command = COMMANDS.get(name)()
        p = sub.add_parser(name, help=command.help, description=command.help,
                           epilog=f"example:\n  {command.example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(handler=command)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    # Loading the commands imports torch and mujoco for seconds; a Ctrl-C inside a C extension's
    # initialisation would surface as an ImportError. Held meanwhile, it arrives right after.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        try:
            parser = build_parser()
            signal.signal(signal.SIGTERM, _interrupt)  # a service's stop ends it like Ctrl-C
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        print("robot-rl: interrupted before it started; nothing was written", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler.run(args)
    except RobotRLError as exc:
        print(f"robot-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robot-rl {args.command}: interrupted; committed data is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
