"""The learner's batches outlast a buffer with nothing to sample yet (its thread waits, then
trains: a generator that raised once would be spent, and the thread would die)."""

import pytest

from buffer import NothingToSampleError, ReplayBuffer
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
