"""`robot-rl config show`: the composed configuration a command would run with, every key."""

from __future__ import annotations

import argparse

from omegaconf import OmegaConf

from robot_rl.commands import COMMANDS, Command, add_action
from robot_rl.config import GROUPS, group_options


def groups_help() -> str:
    """One line per config group: its options, for help texts."""
    return "\n".join(f"  {g}={' | '.join(group_options(g))}" for g in GROUPS)


@COMMANDS.register("config")
class ConfigCommand(Command):
    help = "Print the composed configuration (every key, and the option of each config group)."
    example = ("robot-rl config show task=pick_cube algo=rlpd\n"
               "  robot-rl config show run.dir=runs/pick teleop=scripted   # what a resume runs")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        show = add_action(
            sub, "show", "print the config `robot-rl train` would run with these overrides (an "
            "existing run.dir: its own config plus the overrides, as a resume composes it)",
            self.example, f"config groups and their options:\n{groups_help()}")
        show.add_argument("overrides", nargs="*", metavar="key=value",
                          help="config groups (task=..., algo=...) and keys (run.env_steps=...)")

    def run(self, args: argparse.Namespace) -> int:
        from robot_rl.commands.train import resolve_config

        run, cfg = resolve_config(args.overrides)
        chosen = " ".join(f"{g}={cfg.choices.get(g) or 'null'}" for g in GROUPS)
        print(f"# {'resuming' if run.exists else 'a new run in'} {run.root}: {chosen}")
        print(OmegaConf.to_yaml(cfg), end="")
        return 0
