"""Every sub-command explains itself: a description, an example, and help on every option."""

from __future__ import annotations

import argparse
import subprocess
import sys

from robot_rl.cli import build_parser


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of every sub-command and sub-action, e.g. ('buffer export', ...)."""
    found = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found.append((f"{prefix} {name}".strip(), child))
                    walk(f"{prefix} {name}", child)

    walk("", build_parser())
    return found


def test_every_command_has_a_description_an_example_and_help_on_every_option() -> None:
    missing = []
    for name, parser in parsers():
        has_actions = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        if not parser.description:
            missing.append(f"{name}: no description")
        if not has_actions and "example:" not in (parser.epilog or ""):
            missing.append(f"{name}: no example")
        for action in parser._actions:
            if not action.help and not isinstance(action, argparse._SubParsersAction):
                missing.append(f"{name}: {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "robot_rl.cli", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("robot-rl ")


def test_train_help_lists_the_config_groups_and_their_options() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()  # type: ignore[union-attr]
    assert "config groups and their options:" in text
    for line in ("task=", "algo=", "reward=", "teleop="):
        assert line in text
    assert "pick_cube" in text and "rlpd" in text and "scripted" in text
