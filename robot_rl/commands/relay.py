"""`robot-rl relay`: a site's relay; its robots point --gateway at it and need nothing else."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import time
from pathlib import Path

from comms.auth import TOKEN_ENV, load_token
from comms.bulk import BulkServer
from comms.relay import SiteRelay
from comms.weight_service import WeightService
from comms.weight_sync_sender import WeightSender
from robot_rl.commands import COMMANDS, Command
from robot_rl.commands.edge import client_tls
from robot_rl.commands.gateway import check_port_free, server_tls
from robot_rl.core import CommsError, ConfigError


@COMMANDS.register("relay")
class RelayCommand(Command):
    help = ("Relay a site's robots to the cloud gateway: each weight version crosses the "
            "wide-area link once; the robots' streams pass through untouched.")
    example = ("robot-rl relay --gateway wss://cloud.example:8765 --cafile ca.pem "
               "--token-file ~/.robot_rl/relay.key --host 0.0.0.0 --port 8765  "
               "# robots: robot-rl edge --gateway ws://<relay>:8765 ...")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--gateway", required=True,
                            help="the cloud gateway: ws://host:port or wss://host:port")
        parser.add_argument("--token-file", type=Path, default=None,
                            help=f"the relay's key or the shared token (else ${TOKEN_ENV}); "
                                 "robots keep their own keys, checked by the cloud")
        parser.add_argument("--cafile", type=Path, default=None,
                            help="CA to trust for a wss:// gateway")
        parser.add_argument("--relay-id", default=f"relay-{socket.gethostname()}",
                            help="the name the relay authenticates as (its key's edge id)")
        parser.add_argument("--host", default="127.0.0.1",
                            help="address robots reach the relay on (0.0.0.0: the site's LAN)")
        parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
        parser.add_argument("--bulk-port", type=int, default=0,
                            help="port of the robots' bulk weight channel; 0 picks a free one, "
                                 "-1 sends weights on the websocket only")
        parser.add_argument("--certfile", type=Path, default=None,
                            help="serve robots wss with this certificate")
        parser.add_argument("--keyfile", type=Path, default=None,
                            help="private key of --certfile")
        parser.add_argument("--mode", default="patch", choices=["full", "patch", "fp16"],
                            help="how versions go to the robots: patch (only what changed, "
                                 "bit-exact; the default), full, or fp16 (half size, lossy)")
        parser.add_argument("--connect-timeout", type=float, default=10.0,
                            help="seconds to wait for the cloud gateway at start")

    def run(self, args: argparse.Namespace) -> int:
        if not args.gateway.startswith(("ws://", "wss://")):
            raise ConfigError(f"--gateway must be a ws:// or wss:// URL, got {args.gateway!r}")
        token = load_token(args.token_file)
        upstream_ssl = client_tls(args.gateway, args.cafile)
        context = server_tls(args.certfile, args.keyfile)
        check_port_free(args.host, args.port)
        if args.bulk_port > 0:
            check_port_free(args.host, args.bulk_port)
        bulk = None if args.bulk_port < 0 else BulkServer(args.host, args.bulk_port, context)
        relay = SiteRelay(args.gateway, token, args.relay_id,
                          WeightService(WeightSender(args.mode), bulk=bulk),
                          host=args.host, port=args.port, ssl_context=context,
                          upstream_ssl=upstream_ssl)
        asyncio.run(serve_relay(relay, args.connect_timeout,
                                "wss" if context else "ws", args.host))
        return 0


async def serve_relay(relay: SiteRelay, connect_timeout: float, scheme: str, host: str) -> None:
    """Start `relay`, fail in one line if its cloud link cannot come up, serve until signalled."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await relay.start()
    try:
        deadline = time.monotonic() + connect_timeout
        link = relay.upstream
        while not link.connected and link.fatal_error is None:
            if time.monotonic() > deadline:
                raise CommsError(
                    f"cannot reach the gateway at {relay.upstream_url} within {connect_timeout:g}"
                    " s: check --gateway, that the gateway runs, and the network between")
            await asyncio.sleep(0.05)
        if link.fatal_error is not None:
            raise CommsError(f"the gateway at {relay.upstream_url} refused the relay: "
                             f"{link.fatal_error}")
        print(f"relay listening on {scheme}://{host}:{relay.port} -> {relay.upstream_url}",
              flush=True)
        await stop.wait()
    finally:
        await relay.stop()
