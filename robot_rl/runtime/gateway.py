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

import numpy as np
from omegaconf import DictConfig

from buffer.zarr_storage import stored_specs
from comms.auth import load_token
from comms.edge_keys import EdgeKeys
from comms.gateway import Gateway, GatewayThread
from comms.messages import spec_digest
from comms.sink import TransitionSink
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
                  edge_keys: EdgeKeys | None = None) -> Gateway:
    """A gateway committing into `run`'s buffer; with `serve_policy`, the run's latest policy."""
    obs_spec, action_spec = run_specs(cfg, run)
    sink = BufferSink(run.buffer, obs_spec, action_spec, task=str(cfg.task.name))
    inference = None
    if serve_policy:
        algo = build_algorithm(cfg, obs_spec, action_spec)
        state = load_latest(run.checkpoints)
        if state is not None:
            algo.load_state_dict(state["algorithm"])
            algo.policy.version = int(state["counters"]["policy_version"])
        inference = ServedPolicy(algo.policy, obs_spec, action_spec)
    return Gateway(sink, token, spec_digest(obs_spec, action_spec), inference=inference,
                   host=host, port=port, ssl_context=ssl_context, edge_keys=edge_keys)


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
    writer); remote-policy edges are answered with the learner's newest version, which a thread
    fetches with `poll_weights(held)` as versions are published."""

    def __init__(self, cfg: DictConfig, sink: TransitionSink, obs_spec: DictSpec,
                 action_spec: ArraySpec,
                 poll_weights: Callable[[int], WeightUpdate | None]) -> None:
        g = cfg.gateway
        token = load_token(_path(g.token_file))
        keys = None if g.edges_file is None else EdgeKeys(Path(g.edges_file), token)
        self.served = (ServedPolicy(build_algorithm(cfg, obs_spec, action_spec).policy,
                                    obs_spec, action_spec) if g.serve_policy else None)
        self.poll_weights = poll_weights
        gateway = Gateway(sink, token, spec_digest(obs_spec, action_spec), inference=self.served,
                          host=str(g.host), port=int(g.port),
                          ssl_context=server_tls(_path(g.certfile), _path(g.keyfile)),
                          edge_keys=keys)
        logging.getLogger("comms.gateway").setLevel(logging.INFO)  # connects and drops, by robot
        self.thread = GatewayThread(gateway)
        self.sync_latency_s: float | None = None
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="gateway-weights",
                                          daemon=True)
        self._follower.start()

    @property
    def port(self) -> int:
        return self.thread.port

    @property
    def version(self) -> int:
        """The version remote-policy edges are answered with (-1: none served)."""
        return self.served.policy.version if self.served is not None else -1

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_S):
            if self.served is None:
                return
            try:
                update = self.poll_weights(self.served.policy.version)
            except Exception as exc:  # the learner is gone: keep serving what we have
                log.warning("session gateway: no new weights from the learner: %s", exc)
                continue
            if update is not None:
                self.served.set_weights(update.weights, update.version)
                self.sync_latency_s = max(0.0, time.time() - update.published_at)

    def stats(self) -> dict[str, int]:
        return dict(self.thread.gateway.stats)

    def stop(self) -> None:
        self._stop.set()
        self._follower.join(timeout=5)
        self.thread.stop()
