"""`algo=rlpd` in a real session: demo-side data from <run>/demos mixed 50/50 into every batch."""

from __future__ import annotations

import numpy as np
import pytest

from buffer import ReplayBuffer
from robot_rl.config import compose_session
from robot_rl.core import Episode, Source, Transition
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session import Session
from sim.interveners import ScriptedIntervener

QUICK = ["algo=rlpd", "learner.warmup_steps=60", "learner.batch_size=32",
         "algo.params.hidden=[32,32]", "algo.params.critics=4", "task.max_steps=20"]


def scripted_reach_demo(session: Session, episode_id: int) -> Episode:
    """A scripted expert steering the gripper to the target, recorded as a demonstration."""
    robot, arm = session.robot, session.arm
    obs, ep = robot.reset(), Episode(episode_id, robot.robot_id, "reach")
    for step in range(session.cfg.task.max_steps):
        delta = (obs["target_pos"] - obs["ee_pos"]) / session.cfg.robot.translation_scale
        applied = robot.send_action(np.append(np.clip(delta, -1, 1), [0, 0]).astype(np.float32))
        nxt, outcome = robot.get_observation(), arm.outcome()
        ep.transitions.append(Transition(obs, applied, outcome.dense_reward, nxt, outcome.success,
                                         False, source=Source.DEMO, robot_id=robot.robot_id,
                                         episode_id=episode_id,
                                         step=step))
        obs = nxt
        if outcome.success:
            break
    ep.success = ep.transitions[-1].terminated
    return ep


def new_session(tmp_path, env_steps: int, *overrides: str) -> Session:
    """An RLPD session in a fresh run directory, its config saved as `robot-rl train` does."""
    run = RunDir(tmp_path / "run")
    cfg = compose_session([*QUICK, f"run.dir={run.root}", f"run.env_steps={env_steps}",
                           *overrides])
    run.root.mkdir()
    run.save_config(cfg)
    return Session(cfg, run)


@pytest.mark.slow
def test_rlpd_session_mixes_demo_side_into_every_batch(tmp_path) -> None:
    session = new_session(tmp_path, env_steps=120)
    session.robot.connect()
    with ReplayBuffer(session.run.demos, session.robot.observation_spec,
                      session.robot.action_spec) as demos:  # closed: one writer at a time
        for i in range(3):
            demos.add_episode(scripted_reach_demo(session, i))
        demo_steps = len(demos)
    counters = session.run_until_budget()
    assert counters.updates > 0
    assert len(session.demos) == demo_steps  # no takeovers in this run: demo side unchanged
    batch = next(session.batches())
    assert len(batch) == 32
    assert int((batch.source == Source.DEMO).sum()) == 16
    assert int((batch.source == Source.POLICY).sum()) == 16


@pytest.mark.slow
def test_takeovers_are_flagged_and_feed_the_demo_side(tmp_path) -> None:
    session = new_session(tmp_path, 100, "teleop=scripted", "teleop.params.start_prob=0.2",
                          "teleop.params.window=5", "teleop.params.budget=40")
    session.run_until_budget()
    assert isinstance(session.teleop, ScriptedIntervener) and session.teleop.used == 40
    assert len(session.demos) == 40  # exactly the intervened steps went to the demo side
    assert int(session.buffer.episode_table()["interventions"].sum()) == 40
    batch = next(session.batches())
    assert batch.intervened[16:].all()  # the demo half; the online half holds every step


@pytest.mark.slow
def test_n_step_returns_reach_both_sides_of_the_batch(tmp_path) -> None:
    session = new_session(tmp_path, 120, "buffer.n_step=3")
    with ReplayBuffer(session.run.demos, session.arm.observation_spec,
                      session.robot.action_spec) as demos:
        session.robot.connect()
        demos.add_episode(scripted_reach_demo(session, -1))
    assert session.run_until_budget().updates > 0
    gamma = session.algo.config.gamma
    batch = next(session.batches())
    # a row sums up to 3 rewards and bootstraps with gamma^(k-1), k < 3 only near an episode's end
    for half in (batch.discount[:16], batch.discount[16:]):  # online rows, then demo rows
        assert np.isclose(half[:, None], [1.0, gamma, gamma ** 2]).any(axis=1).all()
        assert np.isclose(half, gamma ** 2).any()
