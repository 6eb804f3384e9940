"""`robot-rl gateway`: the cloud end; edges dial in, their transitions land in a run's buffer."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from comms.adaptive import SyncBounds
from comms.auth import TOKEN_ENV, load_token
from comms.edge_keys import EdgeKeys
from comms.weight_sync_sender import WeightSender
from robot_rl.commands import COMMANDS, Command
from robot_rl.commands.train import resolve_config
from robot_rl.runtime.gateway import (
    build_gateway,
    check_port_free,
    serve_until_signalled,
    server_tls,
)


@COMMANDS.register("gateway")
class GatewayCommand(Command):
    help = "Serve edges: authenticate them, commit their transitions to a run's buffer."
    example = ("robot-rl gateway --port 8765 --token-file ~/.robot_rl/token --run-dir runs/reach "
               "task=reach")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on: 127.0.0.1 (this machine only, the "
                                 "default) or 0.0.0.0 for edges elsewhere (use TLS then)")
        parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
        parser.add_argument("--token-file", type=Path, default=None,
                            help=f"file holding the shared token (else ${TOKEN_ENV})")
        parser.add_argument("--edges-file", type=Path, default=None,
                            help="per-edge keys file (robot-rl token issue): each edge proves its "
                            "own key and writes only its streams; without it, the shared token")
        parser.add_argument("--run-dir", type=Path, required=True,
                            help="run directory whose buffer the edges' transitions go to "
                                 "(created, or resumed with its own config)")
        parser.add_argument("--certfile", type=Path, default=None, help="serve wss with this cert")
        parser.add_argument("--keyfile", type=Path, default=None,
                            help="private key of --certfile")
        parser.add_argument("--serve-policy", action="store_true",
                            help="answer remote action requests with the run's latest policy")
        parser.add_argument("--bulk-port", type=int, default=0,
                            help="port of the bulk channel weights stream on (TCP, TLS with "
                                 "--certfile); 0 picks a free one, -1 sends them on the "
                                 "websocket only (for a firewall that opens one port)")
        parser.add_argument("overrides", nargs="*", metavar="key=value",
                            help="config overrides, as for train (task=pick_cube, ...)")

    def run(self, args: argparse.Namespace) -> int:
        token = load_token(args.token_file)
        context = server_tls(args.certfile, args.keyfile)
        run, cfg = resolve_config([*args.overrides, f"run.dir={args.run_dir}"])
        lock = run.writer_lock()
        if run.exists:
            lock.acquire()  # a train (or another gateway) on this run is refused at once
        check_port_free(args.host, args.port)
        if args.bulk_port > 0:
            check_port_free(args.host, args.bulk_port)
        lock.acquire()
        run.save_config(cfg)
        logging.getLogger("comms.gateway").setLevel(logging.INFO)  # connects and drops, by robot
        edge_keys = None if args.edges_file is None else EdgeKeys(args.edges_file, token)
        gateway = build_gateway(cfg, run, token, host=args.host, port=args.port,
                                ssl_context=context, serve_policy=args.serve_policy,
                                edge_keys=edge_keys, weights=WeightSender("patch"),
                                bulk_port=None if args.bulk_port < 0 else args.bulk_port,
                                sync_bounds=SyncBounds())
        scheme = "wss" if context else "ws"
        asyncio.run(serve_until_signalled(
            gateway, f"gateway listening on {scheme}://{args.host}:{{port}} -> {run.root}"))
        return 0
