"""The demo side follows the run's buffer: takeovers copied once, a crash between the two
commits repaired at the next start, nothing copied twice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from buffer import ReplayBuffer, ZarrStorage
from robot_rl.core import Episode, Source
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session_writer import SessionWriter
from tests.integration.comms_helpers import ACTION_SPEC, OBS_SPEC, numbered


def episode(episode_id: int, taken_over: range) -> Episode:
    steps = [dataclasses.replace(numbered(i), episode_id=episode_id, step=i,
                                 intervened=i in taken_over,
                                 source=Source.HUMAN if i in taken_over else Source.POLICY)
             for i in range(6)]
    return Episode(episode_id, steps[0].robot_id, "default", steps, success=True)


def writer_at(run: RunDir) -> SessionWriter:
    demos = ReplayBuffer(run.demos, OBS_SPEC, ACTION_SPEC)
    return SessionWriter(run, OBS_SPEC, ACTION_SPEC, "default", demos)


def demo_steps(run: RunDir) -> list[list[int]]:
    """Each demo-side episode as the rewards of its rows (a step's index in its run episode)."""
    storage = ZarrStorage.open_existing(run.demos)
    rewards = storage.read_step_info()["reward"].astype(int).tolist()
    table = storage.read_episodes()
    return [rewards[start:start + length]
            for start, length in zip(table["start"], table["length"], strict=True)]


def test_takeovers_are_copied_once_and_a_crash_between_commits_is_repaired(
        tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    writer = writer_at(run)
    writer.commit_episode("r1", 0, episode(0, range(2, 4)))
    writer.commit_episode("r1", 6, episode(1, range(0)))  # nobody took over: nothing to copy
    writer.close()
    assert demo_steps(run) == [[2, 3]]

    # a crash after the buffer's commit, before the demo side's: the buffer alone has episode 2
    writer = writer_at(run)
    writer.demos.close()  # type: ignore[union-attr]
    writer.demos = None
    writer.commit_episode("r1", 12, episode(2, range(4, 6)))
    writer.sink.close()
    writer_at(run).close()  # the next start copies what the demo side missed ...
    assert demo_steps(run) == [[2, 3], [4, 5]]
    writer_at(run).close()  # ... once
    assert demo_steps(run) == [[2, 3], [4, 5]]
