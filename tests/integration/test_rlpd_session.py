"""`algo=rlpd` in a real session: demo-side data from <run>/demos mixed 50/50 into every batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from buffer import ReplayBuffer, ZarrStorage
from robot_rl.core import Batch, Episode, Source, Transition
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.learner_service import LearnerService
from robot_rl.runtime.ray.session import RaySession
from tests.integration.sessions import new_session as session_at

QUICK = ["algo=rlpd", "learner.warmup_steps=60", "learner.batch_size=32",
         "algo.params.hidden=[32,32]", "algo.params.critics=4", "task.max_steps=20",
         "runtime.max_lead=10"]  # the robot waits for the learner well inside the budget
pytestmark = pytest.mark.usefixtures("ray_local")


def scripted_reach_demos(session: RaySession, episodes: int) -> int:
    """A scripted expert steering the gripper to the target, recorded as demonstrations into the
    run's demo side; their steps."""
    cfg = session.cfg
    arm, robot = build_robot(cfg)
    robot.connect()
    with ReplayBuffer(session.run.demos, arm.observation_spec, arm.action_spec) as demos:
        for episode_id in range(-episodes, 0):
            obs, ep = robot.reset(), Episode(episode_id, robot.robot_id, "reach")
            for step in range(cfg.task.max_steps):
                delta = (obs["target_pos"] - obs["ee_pos"]) / cfg.robot.translation_scale
                action = np.append(np.clip(delta, -1, 1), [0, 0]).astype(np.float32)
                applied = robot.send_action(action)
                nxt, outcome = robot.get_observation(), arm.outcome()
                ep.transitions.append(Transition(
                    obs, applied, outcome.dense_reward, nxt, outcome.success, False,
                    source=Source.DEMO, robot_id=robot.robot_id, episode_id=episode_id,
                    step=step))
                obs = nxt
                if outcome.success:
                    break
            ep.success = ep.transitions[-1].terminated
            demos.add_episode(ep)
        return len(demos)


def new_session(tmp_path: Path, env_steps: int, *overrides: str) -> RaySession:
    """An RLPD session in a fresh run directory, its config saved as `robot-rl train` does."""
    return session_at(tmp_path / "run", *QUICK, f"run.env_steps={env_steps}", *overrides)


def learner_batch(session: RaySession) -> tuple[LearnerService, Batch]:
    """The session's learner, as it restarts from the run, and a batch it trains on."""
    learner = LearnerService(session.cfg, session.run, session.obs_spec, session.action_spec)
    return learner, next(learner._batches())


@pytest.mark.slow
def test_rlpd_session_mixes_demo_side_into_every_batch(tmp_path) -> None:
    session = new_session(tmp_path, env_steps=120)
    demo_steps = scripted_reach_demos(session, 3)
    assert session.run_until_budget()["updates"] > 0
    learner, batch = learner_batch(session)
    assert len(learner.demos) == demo_steps  # no takeovers in this run: demo side unchanged
    assert len(batch) == 32
    assert int((batch.source == Source.DEMO).sum()) == 16
    assert int((batch.source == Source.POLICY).sum()) == 16


@pytest.mark.slow
def test_takeovers_are_flagged_and_feed_the_demo_side(tmp_path) -> None:
    session = new_session(tmp_path, 100, "teleop=scripted", "teleop.params.start_prob=0.2",
                          "teleop.params.window=5", "teleop.params.budget=40")
    session.run_until_budget()
    learner, batch = learner_batch(session)
    assert len(learner.demos) == 40  # exactly the intervened steps (the budget) went there
    assert int(ZarrStorage.open_existing(session.run.buffer).read_episodes()[
        "interventions"].sum()) == 40
    assert batch.intervened[16:].all()  # the demo half; the online half holds every step


@pytest.mark.slow
def test_n_step_returns_reach_both_sides_of_the_batch(tmp_path) -> None:
    session = new_session(tmp_path, 120, "buffer.n_step=3")
    scripted_reach_demos(session, 1)
    assert session.run_until_budget()["updates"] > 0
    learner, batch = learner_batch(session)
    gamma = learner.algo.config.gamma
    # a row sums up to 3 rewards and bootstraps with gamma^(k-1), k < 3 only near an episode's end
    for half in (batch.discount[:16], batch.discount[16:]):  # online rows, then demo rows
        assert np.isclose(half[:, None], [1.0, gamma, gamma ** 2]).any(axis=1).all()
        assert np.isclose(half, gamma ** 2).any()
