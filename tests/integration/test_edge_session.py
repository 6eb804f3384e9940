"""A robot at the edge trained from the cloud: a sim arm behind the real edge agent streams into a
session's gateway through an emulated WAN whose cable is pulled mid-episode."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from buffer import ZarrStorage
from comms.netem import NetemProxy
from robot_rl.config import compose_session
from robot_rl.core import ConfigError, Source
from robot_rl.runtime.edge import EdgeAgent, EdgeOptions
from robot_rl.runtime.env_worker import SessionStart
from tests.integration.comms_helpers import FAST, TOKEN, token_file
from tests.integration.sessions import new_session

EDGE = ["task=reach", "task.max_steps=20", "robot.control_hz=50"]
EPISODES = 60  # 20 steps at 50 Hz: time for the learner to start training before the cut
SESSION = [*EDGE, "robots={}", "gateway.port=0", "run.env_steps=100000",
           "learner.warmup_steps=60", "learner.batch_size=32", "algo.params.hidden=[32,32]",
           "runtime.sync_every=10"]


def wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.slow
def test_an_edge_robot_is_trained_from_the_cloud_and_loses_nothing_when_its_link_drops(
        tmp_path: Path, ray_local: None) -> None:
    token = token_file(tmp_path)
    session = new_session(tmp_path / "run", *SESSION, f"gateway.token_file={token}")
    result: dict[str, object] = {}
    runner = threading.Thread(target=lambda: result.update(session.run_until_budget()))
    runner.start()
    try:
        wait_for(lambda: session.edge_port is not None, 120, "the session's gateway never came up")
        # the gateway opens before the learner starts: on a busy machine the edge's quick
        # episodes could all end before the learner trains, and there would be nothing to cut
        wait_for(lambda: getattr(session, "learner", None) is not None, 120, "no learner")
        ray.get(session.learner.updates.remote())
        wan = NetemProxy(int(session.edge_port)).start()  # type: ignore[arg-type]
        agent = EdgeAgent(compose_session(EDGE), TOKEN, EdgeOptions(
            gateway_url=f"ws://127.0.0.1:{wan.port}", spool_dir=tmp_path / "spool",
            policy="remote", deadline=0.5, episodes=EPISODES, drain=20.0, timings=FAST))
        edge = threading.Thread(target=agent.run)
        edge.start()
        wait_for(lambda: agent.stats["steps"] >= 100, 240, "the edge never got going")
        wait_for(lambda: ray.get(session.learner.updates.remote()) > 0, 240, "no training")
        updates = ray.get(session.learner.updates.remote())
        wan.cut(3.0)  # mid-episode: the edge holds, its steps wait in its spool
        time.sleep(3.0)
        assert ray.get(session.learner.updates.remote()) > updates  # the learner never stalls
        # its ratio counts from the writer's opening, not from the learner's own start
        assert session.start == SessionStart(0, 0)
        edge.join(timeout=240)
        assert not edge.is_alive() and agent.spool.pending_count() == 0  # every step acked
    finally:
        session.request_stop()
        runner.join(timeout=120)
        wan.stop()
    assert not runner.is_alive() and result["updates"] > 0

    storage = ZarrStorage.open_existing(session.run.buffer)
    info = storage.read_step_info()
    assert storage.steps == agent.stats["steps"]  # every step once: nothing lost, no duplicate
    pairs = set(zip(info["episode_id"].tolist(), info["step"].tolist(), strict=True))
    assert len(pairs) == storage.steps
    assert storage.episodes == EPISODES
    assert agent.stats["held_link_down"] >= 1  # held while the link was down
    assert (info["source"] == int(Source.HOLD)).any()
    versions = info["policy_version"]
    assert versions[-20:].min() > 0  # acting with the learner's weights by the end ...
    assert versions[-20:].mean() > versions[:100].mean()  # ... whose versions rose as it trained
    assert np.all(np.diff(versions[versions > 0]) >= -10)  # in order, give or take a sync


def test_an_edge_session_without_a_token_or_port_is_refused_before_it_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBOT_RL_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="robots=\\{\\} leaves this session no robot"):
        new_session(tmp_path / "a", "robots={}")
    with pytest.raises(Exception, match="no token"):
        new_session(tmp_path / "b", *SESSION)
    with pytest.raises(ConfigError, match="runtime.mode=sync .* cannot pause edge robots"):
        new_session(tmp_path / "c", *SESSION, "runtime.mode=sync")
    assert not any((tmp_path / name).exists() for name in "abc")


@pytest.mark.slow
def test_an_edge_robot_with_its_own_policy_gets_each_new_version_streamed(
        tmp_path: Path, ray_local: None) -> None:
    token = token_file(tmp_path)
    session = new_session(tmp_path / "run", *SESSION, f"gateway.token_file={token}")
    runner = threading.Thread(target=session.run_until_budget)
    runner.start()
    try:
        wait_for(lambda: session.edge_port is not None, 120, "the session's gateway never came up")
        # the gateway opens before the learner starts: on a busy machine 20 quick episodes could
        # all end before the learner is up to train on them
        wait_for(lambda: getattr(session, "learner", None) is not None, 120, "no learner")
        ray.get(session.learner.updates.remote())
        agent = EdgeAgent(compose_session([*EDGE, "algo.params.hidden=[32,32]"]), TOKEN,
                          EdgeOptions(gateway_url=f"ws://127.0.0.1:{session.edge_port}",
                                      spool_dir=tmp_path / "spool", policy="local", episodes=20,
                                      drain=20.0, timings=FAST))
        agent.run()
    finally:
        session.request_stop()
        runner.join(timeout=120)
    info = ZarrStorage.open_existing(session.run.buffer).read_step_info()
    versions = info["policy_version"]
    assert len(versions) == agent.stats["steps"]
    assert versions[-20:].min() > 0  # the edge acts with the learner's weights ...
    assert len(set(versions.tolist())) > 2  # ... each new version taken between two steps
    assert (np.diff(versions) >= 0).all()  # one robot: never an older version after a newer
