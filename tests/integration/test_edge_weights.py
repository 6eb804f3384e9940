"""Weight sync through the deployed path: a real Gateway publishing versions to a real EdgeAgent
with a local policy on a MuJoCo arm, whose transitions name the versions it acted with."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from buffer import ReplayBuffer
from comms.bulk import BulkServer
from comms.gateway import Gateway, GatewayThread
from comms.messages import spec_digest
from comms.weight_service import WeightService
from comms.weight_sync_sender import WeightSender
from robot_rl.config import compose_session
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.build import build_algorithm, build_robot
from robot_rl.runtime.edge import EdgeAgent, EdgeOptions
from tests.integration.comms_helpers import FAST, TOKEN


def test_published_versions_reach_a_local_policy_edge_and_its_transitions_name_them(
        tmp_path: Path) -> None:
    cfg = compose_session(["task=reach", "task.max_steps=15", "robot.control_hz=50"])
    arm, _ = build_robot(cfg)
    obs_spec, action_spec = arm.observation_spec, arm.action_spec
    learner = build_algorithm(cfg, obs_spec, action_spec).policy
    sink = BufferSink(tmp_path / "buffer", obs_spec, action_spec)
    gw = GatewayThread(Gateway(sink, TOKEN, spec_digest(obs_spec, action_spec), timings=FAST,
                               weights=WeightService(WeightSender("patch"), bulk=BulkServer())))
    agent = EdgeAgent(cfg, TOKEN, EdgeOptions(
        gateway_url=f"ws://127.0.0.1:{gw.port}", spool_dir=tmp_path / "spool", policy="local",
        episodes=6, drain=5.0, timings=FAST))
    runner = threading.Thread(target=agent.run)
    runner.start()
    published = []
    try:
        weights = learner.get_weights()
        for version in (1, 2, 3):
            weights = {k: v + np.asarray(0.01, v.dtype) if v.dtype.kind == "f" else v
                       for k, v in weights.items()}
            gw.publish_weights(weights, version)
            published.append(weights)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and agent.source.version != version:
                time.sleep(0.01)
            assert agent.source.version == version, (gw.weight_stats(), agent.stats)
            assert gw.weight_stats()[str(cfg.robot.id)]["via"] == "bulk"
        runner.join(60)
        deadline = time.monotonic() + 20  # the gateway sees the edge's close when it arrives
        while time.monotonic() < deadline and gw.weight_stats()[str(cfg.robot.id)]["connected"]:
            time.sleep(0.01)
        stats = gw.weight_stats()[str(cfg.robot.id)]
    finally:
        gw.stop()
        runner.join(60)
    assert not runner.is_alive()
    policy = agent.source.policy.policy  # type: ignore[attr-defined]
    for name, arr in policy.get_weights().items():  # the edge acts with exactly version 3
        np.testing.assert_array_equal(arr, published[-1][name])
    assert stats["version"] == 3 and stats["lag"] == 0 and not stats["connected"]
    assert stats["sync_latency_s"] is not None and stats["sync_latency_s"] > 0
    assert agent.stats["weights_applied"] == 3
    versions = ReplayBuffer(tmp_path / "buffer", readonly=True).storage.read_steps()[
        "policy_version"]
    assert versions[-1] == 3 and {1, 2, 3} <= set(versions.tolist())
    assert np.all(np.diff(versions) >= 0)  # never back: each step names the version it used
