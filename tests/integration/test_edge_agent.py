"""The edge agent on a MuJoCo arm, driven by a policy served through a real gateway."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from buffer import ReplayBuffer
from comms.gateway import Gateway, GatewayThread
from comms.messages import spec_digest
from robot_rl.cli import main
from robot_rl.config import compose_session
from robot_rl.core import ConfigError, Source, is_demo_side
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.edge import EdgeAgent, EdgeOptions
from tests.integration.comms_helpers import FAST, TOKEN, token_file


class TowardsTarget:
    """A served policy that moves the gripper towards the target (version 3)."""

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        delta = np.clip((obs["target_pos"] - obs["ee_pos"]) * 20, -1, 1)
        return np.concatenate([delta, [0.0, 0.0]]).astype(np.float32), 3


def wait_for(cond: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_remote_policy_estop_from_the_gateway_and_hold_when_the_link_dies(tmp_path: Path) -> None:
    cfg = compose_session(["task=reach", "task.max_steps=20", "robot.control_hz=50"])
    arm, _ = build_robot(cfg)
    obs_spec, action_spec = arm.observation_spec, arm.action_spec
    sink = BufferSink(tmp_path / "buffer", obs_spec, action_spec)
    gw = GatewayThread(Gateway(sink, TOKEN, spec_digest(obs_spec, action_spec),
                               inference=TowardsTarget(), timings=FAST))
    agent = EdgeAgent(cfg, TOKEN, EdgeOptions(
        gateway_url=f"ws://127.0.0.1:{gw.port}", spool_dir=tmp_path / "spool", policy="remote",
        deadline=0.5, episodes=4, drain=1.0, timings=FAST))
    runner = threading.Thread(target=agent.run)
    runner.start()
    try:
        assert wait_for(lambda: sink.last_seq("sim0") >= 5, 20), agent.link.stats
        gw.control("sim0", "estop", "operator pressed the button")
        assert wait_for(lambda: agent.robot.estopped, 5)
        assert agent.robot.events["estop"] == 1
        gw.control("sim0", "release")
        assert wait_for(lambda: not agent.robot.estopped, 5)
        gw.stop()
        assert wait_for(lambda: agent.stats["held_link_down"] >= 1, 5), agent.stats
        runner.join(60)
    finally:
        gw.stop()
        runner.join(60)
    assert not runner.is_alive()
    assert agent.stats["held_deadline"] >= 1  # steps without a policy were held, not guessed
    versions = ReplayBuffer(tmp_path / "buffer", readonly=True).storage.read_steps()[
        "policy_version"]
    assert len(versions) > 5 and set(versions.tolist()) == {3}


def serve_sim(tmp_path: Path, inference: object, *args: str) -> ReplayBuffer:
    """Run `robot-rl sim-server ARGS` against a real gateway serving `inference`; its buffer."""
    arm, _ = build_robot(compose_session(["task=reach"]))
    obs_spec, action_spec = arm.observation_spec, arm.action_spec
    sink = BufferSink(tmp_path / "buffer", obs_spec, action_spec)
    gw = GatewayThread(Gateway(sink, TOKEN, spec_digest(obs_spec, action_spec),
                               inference=inference, timings=FAST))
    token = token_file(tmp_path)
    try:
        code = main(["sim-server", "--gateway", f"ws://127.0.0.1:{gw.port}", "--token-file",
                     str(token), "--spool-dir", str(tmp_path / "spool"), *args])
    finally:
        gw.stop()
    assert code == 0
    return ReplayBuffer(tmp_path / "buffer", readonly=True)


def test_sim_server_is_a_sim_arm_served_to_a_gateway_like_a_real_one(tmp_path: Path) -> None:
    buffer = serve_sim(tmp_path, TowardsTarget(), "--episodes", "3", "reach",
                       "robot.control_hz=50", "task.max_steps=15")
    assert buffer.num_episodes == 3
    assert buffer.episode_table()["success"].any()  # the served policy drove the arm to targets
    assert set(buffer.storage.read_steps()["policy_version"].tolist()) == {3}


class TooSlow:
    """A served policy that always answers after the edge's deadline."""

    def act(self, robot_id: str, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        time.sleep(0.05)
        return np.zeros(5, np.float32), 1


def test_missed_deadlines_hold_and_still_close_every_episode(tmp_path: Path) -> None:
    buffer = serve_sim(tmp_path, TooSlow(), "--episodes", "2", "--deadline-ms", "10", "reach",
                       "robot.control_hz=50", "task.max_steps=5")
    assert buffer.num_episodes == 2 and not buffer.open_episodes  # no episode merged or left open
    assert buffer.episode_table()["length"].tolist() == [5, 5]
    steps = buffer.storage.read_steps()
    assert set(steps["source"].tolist()) == {int(Source.HOLD)}  # the hold, not a policy
    assert not is_demo_side(steps["source"], steps["intervened"]).any()  # and no demonstration
    np.testing.assert_array_equal(steps["action"], 0.0)


def test_the_edge_runs_the_sessions_step_takeovers_and_sparse_rewards_included(tmp_path) -> None:
    buffer = serve_sim(tmp_path, TowardsTarget(), "--episodes", "2", "reach",
                       "robot.control_hz=50", "task.max_steps=10", "task.reward=sparse",
                       "teleop=scripted", "teleop.params.start_prob=1.0",
                       "teleop.params.window=4", "teleop.params.budget=4")
    steps = buffer.storage.read_steps()
    human = steps["source"] == int(Source.HUMAN)
    assert human.sum() == 4 and steps["intervened"][human].all()  # the scripted person's steps
    assert set(steps["reward"].tolist()) <= {0.0, 1.0}  # task.reward=sparse, as in a session


def test_an_edge_scored_by_labels_needs_a_teleop(tmp_path) -> None:
    cfg = compose_session(["task=reach", "reward=human_label"])
    with pytest.raises(ConfigError, match="teleop=keyboard"):
        EdgeAgent(cfg, TOKEN, EdgeOptions(gateway_url="ws://127.0.0.1:1",
                                          spool_dir=tmp_path / "spool"))


def test_an_edge_with_frozen_features_needs_the_runs_encoder(tmp_path) -> None:
    cfg = compose_session(["task=pick_cube_pixels", "algo=rlpd_frozen", "robot.image_size=32"])
    with pytest.raises(ConfigError, match="algo.features.weights=<run>/encoder.npz"):
        EdgeAgent(cfg, TOKEN, EdgeOptions(gateway_url="ws://127.0.0.1:1",
                                          spool_dir=tmp_path / "spool"))


def test_an_edge_with_the_runs_encoder_steps_on_frozen_features(tmp_path) -> None:
    from policies import EncoderConfig, FrozenCameraFeatures

    pixels = ["task=pick_cube_pixels", "algo=rlpd_frozen", "robot.image_size=32",
              "algo.features.channels=8", "algo.features.feature_dim=8"]
    arm, _ = build_robot(compose_session(pixels))
    encoder = tmp_path / "encoder.npz"  # untrained weights: the edge only has to load them
    FrozenCameraFeatures(arm.observation_spec, EncoderConfig(
        cameras=("wrist_cam", "side_cam"), channels=8, feature_dim=8)).save(encoder)
    cfg = compose_session([*pixels, f"algo.features.weights={encoder}"])
    agent = EdgeAgent(cfg, TOKEN, EdgeOptions(gateway_url="ws://127.0.0.1:1",
                                              spool_dir=tmp_path / "spool", policy="remote"))
    agent.robot.connect()
    try:
        step = agent.actor.step(agent.actor.observe(agent.robot.reset()), None, 0, 0, 0)
    finally:
        agent.robot.disconnect()
    assert {"feat/wrist_cam", "feat/side_cam"} <= set(agent.actor_spec)  # what the edge speaks
    agent.actor_spec.validate(step.next_obs, "the edge's stored observation")
