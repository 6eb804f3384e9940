"""Sub-commands of `robot-rl`. Each module registers one command with `@COMMANDS.register`."""

from __future__ import annotations

import argparse
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from robot_rl.core import Registry


class Command(ABC):
    """One `robot-rl <name>` sub-command: its help, its arguments, and what it does."""

    help: str
    example: str

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the process exit code."""


def add_action(sub: argparse._SubParsersAction, name: str, help: str, example: str,
               epilog: str = "") -> argparse.ArgumentParser:
    """A sub-action (`robot-rl buffer export`, ...) with its help, description and example."""
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                          epilog=f"example:\n  {example}" + (f"\n\n{epilog}" if epilog else ""),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def print_summary(summary: Mapping[str, Any], as_json: bool) -> None:
    """Print a flat summary as one JSON object, or as aligned `key  value` lines."""
    if as_json:
        print(json.dumps(summary))
        return
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {f'{value:.3f}' if isinstance(value, float) else value}")


COMMANDS: Registry[type[Command]] = Registry("command", entry_point_group="robot_rl.commands")

# The built-in commands; importing them registers them.
BUILTIN = (
    "train", "info", "replay", "buffer", "gateway", "edge", "sim_server", "train_reward",
    "record_demos", "config", "hal", "token", "status", "relay",
)
