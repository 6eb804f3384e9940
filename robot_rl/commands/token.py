"""`robot-rl token new|issue|revoke`: the gateway's secret and the per-edge keys derived from it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from comms.auth import TOKEN_ENV, load_token, new_token
from comms.edge_keys import EdgeKeys
from robot_rl.commands import COMMANDS, Command
from robot_rl.core import ConfigError


def write_secret(path: Path, text: bytes) -> None:
    """Create `path` readable by its owner only, refusing to overwrite an existing key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists; remove it first or pick another --out") from None
    with os.fdopen(fd, "wb") as f:
        f.write(text + b"\n")


@COMMANDS.register("token")
class TokenCommand(Command):
    help = "Make the gateway's secret, issue per-edge keys bound to streams and robots, revoke."
    example = ("robot-rl token new --out token\n  robot-rl token issue --edge arm1 --token-file "
               "token --edges-file edges.json --out arm1.key\n  robot-rl token revoke --edge arm1 "
               "--edges-file edges.json")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        new = sub.add_parser("new", help="a fresh random secret (the shared token)")
        new.add_argument("--out", type=Path, required=True, help="file to create (mode 600)")
        issue = sub.add_parser("issue", help="register an edge and write its own key")
        issue.add_argument("--edge", required=True, help="the edge id (its robot.id)")
        issue.add_argument("--stream", action="append", default=[],
                           help="a stream the edge may write (repeatable; default: the edge id)")
        issue.add_argument("--robot", action="append", default=[],
                           help="a robot id its transitions may carry (default: its streams)")
        issue.add_argument("--token-file", type=Path, default=None,
                           help=f"the gateway's secret (else ${TOKEN_ENV})")
        issue.add_argument("--edges-file", type=Path, required=True,
                           help="the gateway's keys file (pass it to robot-rl gateway)")
        issue.add_argument("--out", type=Path, required=True,
                           help="the edge's key file: its --token-file")
        revoke = sub.add_parser("revoke", help="refuse an edge from its next connect on")
        revoke.add_argument("--edge", required=True)
        revoke.add_argument("--edges-file", type=Path, required=True)

    def run(self, args: argparse.Namespace) -> int:
        if args.action == "new":
            write_secret(args.out, new_token().encode())
            print(f"wrote a new secret to {args.out}")
        elif args.action == "issue":
            if args.out.exists():
                raise ConfigError(f"{args.out} exists; remove it first or pick another --out")
            keys = EdgeKeys(args.edges_file, load_token(args.token_file))
            key = keys.issue(args.edge, args.stream, args.robot)
            write_secret(args.out, key)
            print(f"edge {args.edge}: key written to {args.out}; registered in {args.edges_file}")
        else:
            EdgeKeys(args.edges_file, b"").revoke(args.edge)
            print(f"edge {args.edge} revoked in {args.edges_file}: refused from its next connect")
        return 0
