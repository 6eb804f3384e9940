"""The cloud side composed: a gateway over a run directory's buffer, optionally serving a policy."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Mapping

import numpy as np
from omegaconf import DictConfig

from buffer.zarr_storage import stored_specs
from comms.adaptive import SyncBounds
from comms.bulk import BulkServer
from comms.edge_keys import EdgeKeys
from comms.gateway import Gateway
from comms.messages import spec_digest
from comms.weight_service import WeightService
from comms.weight_sync_sender import WeightSender
from policies import Policy
from robot_rl.core import ArraySpec, DictSpec
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.build import build_algorithm, session_specs
from robot_rl.runtime.checkpoint import load_latest
from robot_rl.runtime.run_dir import RunDir

log = logging.getLogger(__name__)


class ServedPolicy:
    """A policy answering remote robots: observations are checked against the spec first and
    handed over writable (a copy of a received array costs ~10 us for two 128x128 images)."""

    def __init__(self, policy: Policy, obs_spec: DictSpec, action_spec: ArraySpec) -> None:
        self.policy, self.obs_spec, self.action_spec = policy, obs_spec, action_spec

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        checked = self.obs_spec.validate(obs, f"observation from {robot_id}")
        # received arrays are read-only views of the frame; torch wants (and may write) its own
        checked = {k: np.require(v, requirements="W") for k, v in checked.items()}
        action = self.action_spec.validate(self.policy.act(checked), "served action")
        return action, self.policy.version


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
