"""The learner's batches outlast a buffer with nothing to sample yet (its thread waits, then
trains: a generator that raised once would be spent, and the thread would die) and hold only the
fields its policy reads; the asynchronous learner never waits for robots unless
`learner.max_updates_per_step` caps its update-to-data ratio, and trains below the robots' CPU
priority."""

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from buffer import NothingToSampleError, ReplayBuffer
from robot_rl.core import Episode, Transition
from robot_rl.runtime.env_worker import SessionStart
from robot_rl.runtime.learner_service import LearnerService
from tests.integration.sessions import new_session


def test_the_learners_batches_go_on_after_nothing_to_sample(tmp_path) -> None:
    session = new_session(tmp_path / "run", "task=reach", "learner.batch_size=8",
                          "algo.params.hidden=[8,8]")
    ReplayBuffer(session.run.buffer, session.obs_spec, session.action_spec).close()
    learner = LearnerService(session.cfg, session.run, session.obs_spec, session.action_spec)
    for _ in range(2):  # an empty buffer: each try says so, none ends the batches
        with pytest.raises(NothingToSampleError):
            next(learner.learner.batches)
    learner.close()


def test_the_learner_holds_only_the_fields_its_policy_reads(tmp_path) -> None:
    """A state policy on a robot with a camera: the learner's buffer leaves the images on disk
    (64 robots' cameras would cost it most of its time), and it trains on the state."""
    session = new_session(tmp_path / "run", "task=reach", "robot.cameras=[wrist_cam]",
                          "robot.image_size=16", "learner.batch_size=8",
                          "algo.params.hidden=[8,8]", "learner.warmup_steps=10")
    assert "wrist_cam" in session.obs_spec
    writer = ReplayBuffer(session.run.buffer, session.obs_spec, session.action_spec)
    writer.add_episode(zero_episode(session, 0, 20))
    learner = LearnerService(session.cfg, session.run, session.obs_spec, session.action_spec)
    reads = learner.algo.policy.obs_keys
    assert "wrist_cam" not in reads and reads
    assert sorted(learner.buffer.cache.pool) == sorted([*(f"obs/{k}" for k in reads), "action"])
    assert learner.train(3) == 3
    writer.close()
    learner.close()


def test_a_learner_that_started_late_trains_on_what_the_session_stored_before(tmp_path) -> None:
    """Edges streamed while the learner started up: counted from the session's start, those
    steps are its to train on (counted from its own start, it would wait for new data)."""
    session = new_session(tmp_path / "run", "task=reach", "learner.batch_size=8",
                          "algo.params.hidden=[8,8]", "learner.warmup_steps=10",
                          "learner.max_updates_per_step=1")
    writer = ReplayBuffer(session.run.buffer, session.obs_spec, session.action_spec)
    writer.add_episode(zero_episode(session, 0, 30))  # before the learner was up
    learner = LearnerService(session.cfg, session.run, session.obs_spec, session.action_spec)
    assert not learner._due(len(learner.buffer))  # its own start: nothing new to train on
    learner.continue_from(SessionStart(0, 0), 0)
    with training(learner, writer):
        assert settled(learner, 20) == 20  # the 20 steps past warm-up, at a ratio of 1


def test_the_learner_trains_below_the_robots_cpu_priority(tmp_path) -> None:
    """On a machine it shares with robots the training thread yields the CPU to their control
    loops and commits by `learner.nice`; the learner's other threads (answers to the session,
    weights to the robots) and the process keep their priority."""
    session = new_session(tmp_path / "run", "task=reach", "learner.batch_size=8",
                          "algo.params.hidden=[8,8]", "learner.warmup_steps=10",
                          "learner.nice=7", "learner.max_updates_per_step=1")
    writer = ReplayBuffer(session.run.buffer, session.obs_spec, session.action_spec)
    writer.add_episode(zero_episode(session, 0, 30))
    learner = LearnerService(session.cfg, session.run, session.obs_spec, session.action_spec)
    learner.continue_from(SessionStart(0, 0), 0)
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with training(learner, writer) as thread:
        assert settled(learner, 20) == 20
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == ours + 7
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ours


@contextmanager
def training(learner: LearnerService, writer: ReplayBuffer) -> Iterator[threading.Thread]:
    """The learner's `run` on a thread of its own; on leaving, both stopped and closed."""
    thread = threading.Thread(target=learner.run)
    thread.start()
    try:
        yield thread
    finally:
        learner.stop()
        thread.join(timeout=30)
        learner.close()
        writer.close()


def settled(learner: LearnerService, n: int) -> int:
    """The learner's update count once it reached `n` (within a minute) and a second passed,
    time for hundreds more were it not waiting for data."""
    deadline = time.monotonic() + 60
    while learner.updates() < n and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    return learner.updates()


def zero_episode(session, episode_id: int, length: int) -> Episode:  # type: ignore[no-untyped-def]
    obs = session.obs_spec.zeros()
    return Episode(episode_id, "robot0", "reach", [
        Transition(obs=obs, action=session.action_spec.zeros(), reward=0.0, next_obs=obs,
                   terminated=False, truncated=step == length - 1, episode_id=episode_id,
                   step=step) for step in range(length)])


def test_the_asynchronous_learner_never_waits_for_robots(tmp_path) -> None:
    """By default it spends the time robots take to act on more updates of what is stored:
    with no new data its updates keep rising past one a step."""
    session = new_session(tmp_path / "run", "task=reach", "learner.batch_size=8",
                          "algo.params.hidden=[8,8]", "learner.warmup_steps=20")
    writer = ReplayBuffer(session.run.buffer, session.obs_spec, session.action_spec)
    learner = LearnerService(session.cfg, session.run, session.obs_spec, session.action_spec)
    writer.add_episode(zero_episode(session, 0, 30))
    with training(learner, writer):
        first = settled(learner, 10)
        time.sleep(1.0)
        assert learner.updates() > max(first, 10)  # 10 steps past warm-up, and on it goes


def test_a_capped_learner_trains_up_to_its_ratio_then_waits_for_data(tmp_path) -> None:
    session = new_session(tmp_path / "run", "task=reach", "learner.batch_size=8",
                          "algo.params.hidden=[8,8]", "learner.warmup_steps=20",
                          "learner.max_updates_per_step=2")
    writer = ReplayBuffer(session.run.buffer, session.obs_spec, session.action_spec)
    learner = LearnerService(session.cfg, session.run, session.obs_spec, session.action_spec)
    writer.add_episode(zero_episode(session, 0, 30))  # warm-up, and 10 steps beyond it
    with training(learner, writer):
        assert settled(learner, 20) == 20  # 2 per step stored past warm-up, and no more
        writer.add_episode(zero_episode(session, 1, 15))
        assert settled(learner, 50) == 50  # new data: 30 updates more, and again it waits
        # restarted after a crash, in a session that had seen 60 updates since it began with
        # 10 steps stored: its ratio counts from there (25 steps past warm-up allow 50), so it
        # waits, with no burst to make up the 10 updates lost since its checkpoint
        learner.continue_from(SessionStart(10, 0), 60)
        time.sleep(1.0)
        assert learner.updates() == 60
        writer.add_episode(zero_episode(session, 2, 10))
        assert settled(learner, 70) == 70
