"""`robot-rl edge`: run a robot at the edge and stream every step to a gateway."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

from comms.auth import TOKEN_ENV, load_token
from robot_rl.commands import COMMANDS, Command
from robot_rl.core import ConfigError
from robot_rl.runtime.edge import ACTION_SOURCES, EdgeAgent, EdgeOptions


def client_tls(url: str, cafile: Path | None) -> ssl.SSLContext | None:
    """The TLS context for a wss:// gateway, trusting `cafile` when given."""
    if not url.startswith("wss://"):
        if cafile is not None:
            raise ConfigError("--cafile only applies to a wss:// gateway")
        return None
    try:
        return ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA file {cafile}: {exc}") from None


@COMMANDS.register("edge")
class EdgeCommand(Command):
    help = "Drive a robot at the edge; stream its transitions to a gateway, losing none."
    example = ("robot-rl edge --gateway ws://127.0.0.1:8765 --token-file ~/.robot_rl/token "
               "task=reach")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--gateway", required=True, help="ws://host:port or wss://host:port")
        parser.add_argument("--token-file", type=Path, default=None,
                            help=f"file holding the shared token (else ${TOKEN_ENV})")
        parser.add_argument("--cafile", type=Path, default=None, help="CA to trust for wss")
        parser.add_argument("--spool-dir", type=Path, default=None,
                            help="where unacked transitions wait (default: edge-spool/<robot.id>)")
        parser.add_argument("--policy", default="local", choices=ACTION_SOURCES.names(),
                            help="local: act with the policy on this machine; remote: ask the "
                                 "gateway's served policy each step (hold on a missed deadline)")
        parser.add_argument("--deadline-ms", type=float, default=100.0,
                            help="per-step deadline of a remote action")
        parser.add_argument("--episodes", type=int, default=None, help="stop after N episodes")
        parser.add_argument("--no-pace", action="store_true",
                            help="step as fast as possible instead of at robot.control_hz")
        parser.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")

    def run(self, args: argparse.Namespace) -> int:
        if not args.gateway.startswith(("ws://", "wss://")):
            raise ConfigError(f"--gateway must be a ws:// or wss:// URL, got {args.gateway!r}")
        from robot_rl.config import compose_session  # Hydra: composing, not importing, needs it

        token = load_token(args.token_file)
        cfg = compose_session(args.overrides)
        options = EdgeOptions(
            gateway_url=args.gateway,
            spool_dir=args.spool_dir or Path("edge-spool") / str(cfg.robot.id),
            policy=args.policy, deadline=args.deadline_ms / 1000.0, episodes=args.episodes,
            pace=not args.no_pace, ssl_context=client_tls(args.gateway, args.cafile),
        )
        agent = EdgeAgent(cfg, token, options, say=lambda line: print(line, flush=True))
        stats = agent.run()
        acked = agent.link.stats
        print(f"edge {cfg.robot.id}: {stats['episodes']} episodes, {stats['steps']} steps; "
              f"{acked['published']} published, missed deadlines {acked['deadline_missed']}; "
              f"unacked in spool: {agent.spool.pending_count()}", flush=True)
        return 0
