"""The cloud side composed: a gateway over a run's buffer, optionally serving a policy.

Two compositions share it: `robot-rl gateway` (edges' transitions stored in a run, a fixed policy
served from the run's checkpoint) and the session's gateway (`SessionGateway`: edges commit
through the session's writer, and the policy served to them follows the learner's versions).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from buffer.zarr_storage import stored_specs
from comms.adaptive import SyncBounds
from comms.auth import load_token
from comms.bulk import BulkServer
from comms.edge_keys import EdgeKeys
from comms.gateway import Gateway, GatewayThread
from comms.messages import spec_digest
from comms.sink import TransitionSink
from comms.weight_service import WeightService
from comms.weight_sync_sender import WeightSender
from policies import Policy
from robot_rl.core import ArraySpec, ConfigError, DictSpec
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.build import build_algorithm, session_specs
from robot_rl.runtime.checkpoint import load_latest
from robot_rl.runtime.env_worker import WeightUpdate
from robot_rl.runtime.run_dir import RunDir

log = logging.getLogger(__name__)
FOLLOW_S = 0.05  # how often the session's gateway asks the learner for a newer version


class ServedPolicy:
    """A policy answering remote robots: observations are checked against the spec first and
    handed over writable (a copy of a received array costs ~10 us for two 128x128 images); new
    weights swap in between two requests, never during one."""

    def __init__(self, policy: Policy, obs_spec: DictSpec, action_spec: ArraySpec) -> None:
        self.policy, self.obs_spec, self.action_spec = policy, obs_spec, action_spec
        self._lock = threading.Lock()

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        checked = self.obs_spec.validate(obs, f"observation from {robot_id}")
        # received arrays are read-only views of the frame; torch wants (and may write) its own
        checked = {k: np.require(v, requirements="W") for k, v in checked.items()}
        with self._lock:
            action, version = self.policy.act(checked), self.policy.version
        return self.action_spec.validate(action, "served action"), version

    def set_weights(self, weights: Mapping[str, np.ndarray], version: int) -> None:
        with self._lock:
            self.policy.set_weights(dict(weights), version)


def server_tls(certfile: Path | None, keyfile: Path | None) -> ssl.SSLContext | None:
    """A TLS context for wss, or None for plain ws; both files or neither."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise ConfigError("wss needs both --certfile and --keyfile (in a session: "
                          "gateway.certfile and gateway.keyfile)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {certfile} / key {keyfile}: {exc}") from None
    return context


def check_port_free(host: str, port: int, option: str = "--port N") -> None:
    """Refuse an address already in use before anything is created (port 0 is always free);
    `option` is how the user sets the port."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        hint = (f"another gateway may be running: stop it or pass {option} (0 picks a free "
                "port)" if exc.errno == errno.EADDRINUSE else "check the host address")
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; {hint}") from None


def run_specs(cfg: DictConfig, run: RunDir) -> tuple[DictSpec, ArraySpec]:
    """The specs edges must speak: those in the header of the run's buffer; for a run with no
    buffer yet, those of the robot (and frozen features) that the config describes."""
    if run.buffer.exists():
        return stored_specs(run.buffer)
    return session_specs(cfg)


def build_gateway(cfg: DictConfig, run: RunDir, token: bytes, *, host: str, port: int,
                  ssl_context: ssl.SSLContext | None, serve_policy: bool,
                  edge_keys: EdgeKeys | None = None, weights: WeightSender | None = None,
                  bulk_port: int | None = 0, sync_bounds: SyncBounds | None = None) -> Gateway:
    """A gateway committing into `run`'s buffer; with `serve_policy`, the run's latest policy.

    With `weights`, it owns that sender and keeps every edge that asks (a local-policy edge, a
    relay) on its newest version (`Gateway.publish_weights`), over a bulk channel on
    `bulk_port` (0: any free port, None: none, chunks on the websocket), adapting each edge's
    mode to its link within `sync_bounds` when given; the run's latest checkpointed policy, if
    there is one, is its first version."""
    obs_spec, action_spec = run_specs(cfg, run)
    sink = BufferSink(run.buffer, obs_spec, action_spec, task=str(cfg.task.name))
    inference, service = None, None
    state = load_latest(run.checkpoints) if serve_policy or weights is not None else None
    if serve_policy or state is not None:
        algo = build_algorithm(cfg, obs_spec, action_spec)
        if state is not None:
            algo.load_state_dict(state["algorithm"])
            algo.policy.version = int(state["counters"]["policy_version"])
        if serve_policy:
            inference = ServedPolicy(algo.policy, obs_spec, action_spec)
    if weights is not None:
        bulk = None if bulk_port is None else BulkServer(host, bulk_port, ssl_context)
        service = WeightService(weights, bulk=bulk, bounds=sync_bounds)
        if state is not None:
            service.publish(algo.policy.get_weights(), algo.policy.version, copy=False)
    return Gateway(sink, token, spec_digest(obs_spec, action_spec), inference=inference,
                   host=host, port=port, ssl_context=ssl_context, edge_keys=edge_keys,
                   weights=service)


async def serve_until_signalled(gateway: Gateway, announce: str) -> None:
    """Serve until SIGINT or SIGTERM; `announce` is printed (with the port) once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    print(announce.format(port=gateway.port), flush=True)
    await stop.wait()
    log.info("gateway: stopping; stats %s", dict(gateway.stats))
    await gateway.stop()


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def check_gateway(cfg: DictConfig) -> None:
    """Refuse now what the session's gateway would refuse when it starts: no token, a TLS pair
    that does not load, a keys file that does not open, a port in use."""
    g = cfg.gateway
    load_token(_path(g.token_file))
    server_tls(_path(g.certfile), _path(g.keyfile))
    if g.edges_file is not None and not Path(g.edges_file).is_file():
        raise ConfigError(f"gateway.edges_file: no file {g.edges_file}; issue each edge a key "
                          "with robot-rl token issue --edges-file ...")
    check_port_free(str(g.host), int(g.port), "gateway.port=N")


class SessionGateway:
    """The session's gateway (config `gateway.*`): edges commit through `sink` (the session's
    writer); a thread takes each version the learner publishes (`poll_weights(held)`) to the
    policy remote-policy edges are answered with, and streams it to local-policy edges and site
    relays (`Gateway.publish_weights`: a bulk channel, the mode adapted to each link)."""

    def __init__(self, cfg: DictConfig, sink: TransitionSink, obs_spec: DictSpec,
                 action_spec: ArraySpec,
                 poll_weights: Callable[[int], WeightUpdate | None]) -> None:
        g = cfg.gateway
        token = load_token(_path(g.token_file))
        keys = None if g.edges_file is None else EdgeKeys(Path(g.edges_file), token)
        tls = server_tls(_path(g.certfile), _path(g.keyfile))
        self.served = (ServedPolicy(build_algorithm(cfg, obs_spec, action_spec).policy,
                                    obs_spec, action_spec) if g.serve_policy else None)
        bulk = None if g.bulk_port is None else BulkServer(str(g.host), int(g.bulk_port), tls)
        weights = WeightService(WeightSender("patch"), bulk=bulk,
                                bounds=SyncBounds(modes=tuple(g.weight_modes)))
        self.poll_weights = poll_weights
        gateway = Gateway(sink, token, spec_digest(obs_spec, action_spec), inference=self.served,
                          host=str(g.host), port=int(g.port), ssl_context=tls, edge_keys=keys,
                          weights=weights)
        logging.getLogger("comms.gateway").setLevel(logging.INFO)  # connects and drops, by robot
        self.thread = GatewayThread(gateway)
        self.version = -1  # the newest version taken from the learner
        self.sync_latency_s: float | None = None  # publish -> served, for remote-policy edges
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="gateway-weights",
                                          daemon=True)
        self._follower.start()

    @property
    def port(self) -> int:
        return self.thread.port

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_S):
            try:
                update = self.poll_weights(self.version)
            except Exception as exc:  # noqa: BLE001 - the learner is gone: keep what we have
                log.warning("session gateway: no new weights from the learner: %s", exc)
                continue
            if update is None:
                continue
            if self.served is not None:
                self.served.set_weights(update.weights, update.version)
                self.sync_latency_s = max(0.0, time.time() - update.published_at)
            self.thread.publish_weights(update.weights, update.version, copy=False)
            self.version = update.version

    def weight_stats(self) -> dict[str, dict[str, Any]]:
        """Per edge: the version it acts with, its lag and sync latency (local-policy edges)."""
        return self.thread.weight_stats()

    def stats(self) -> dict[str, int]:
        return dict(self.thread.gateway.stats)

    def stop(self) -> None:
        self._stop.set()
        self._follower.join(timeout=5)
        self.thread.stop()
