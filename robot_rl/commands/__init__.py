"""Sub-commands of `robot-rl`. Each module registers one command with `@COMMANDS.register`."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod

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


COMMANDS: Registry[type[Command]] = Registry("command", entry_point_group="robot_rl.commands")

# The built-in commands; importing them registers them.
BUILTIN = ("train", "info", "replay", "buffer", "gateway", "edge", "train_reward", "record_demos")
