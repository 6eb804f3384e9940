"""The session's one buffer writer: every robot's episodes and every edge's streams land here.

Env workers commit whole episodes as numbered streams, exactly like edges do through the gateway
(`BufferSink`), so a worker restarted after a crash resumes its stream where the buffer left it:
nothing lost, nothing stored twice. Demo-side steps (takeovers) also go to the run's demo buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from buffer import ReplayBuffer
from comms.sink import StreamBatch, TransitionSink
from policies.rlpd import intervention_rate
from robot_rl.core import ArraySpec, DictSpec, Episode, is_demo_side
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.run_dir import RunDir


@dataclass(frozen=True)
class EpisodeSummary:
    """What the display and the metrics log say of one stored episode."""

    robot_id: str
    episode_id: int
    total_reward: float
    length: int
    success: bool
    interventions: int
    intervention_rate: float
    policy_version: int
    stored_steps: int  # the buffer's size once it was committed


class SessionWriter(TransitionSink):
    """Owns the run's buffer (and its demo side, with RLPD); commits are durable on return."""

    def __init__(self, run: RunDir, obs_spec: DictSpec, action_spec: ArraySpec, task: str,
                 demos: ReplayBuffer | None = None) -> None:
        self.sink = BufferSink(run.buffer, obs_spec, action_spec, task=task)
        self.demos = demos
        self._episodes: list[EpisodeSummary] = []
        self._next_episode = self.sink.buffer.num_episodes

    # -- the TransitionSink an edge gateway commits through ---------------------------------------
    def last_seq(self, stream_id: str) -> int:
        return self.sink.last_seq(stream_id)

    def commit_many(self, batches: Sequence[StreamBatch]) -> list[str | None]:
        return self.sink.commit_many(batches)

    # -- env workers -------------------------------------------------------------------------------
    def next_episode_id(self) -> int:
        """A session-wide episode number (workers of one session never share one)."""
        self._next_episode += 1
        return self._next_episode - 1

    def commit_episode(self, stream_id: str, first_seq: int, episode: Episode) -> int:
        """Commit one whole episode of a worker's stream (a replay of a committed one is skipped);
        its demo-side steps also feed the demo buffer. Returns the buffer's size."""
        if first_seq + episode.length - 1 <= self.last_seq(stream_id):
            return len(self.sink.buffer)  # committed before the worker restarted
        last = first_seq + episode.length - 1
        self.sink.commit(stream_id, first_seq, episode.transitions, [(last, episode.success)])
        demo_side = [t for t in episode.transitions if is_demo_side(t.source, t.intervened)]
        if demo_side and self.demos is not None:
            self.demos.add_episode(Episode(episode.episode_id, episode.robot_id, episode.task,
                                           demo_side, episode.success))
        stored = len(self.sink.buffer)
        versions = [t.policy_version for t in episode.transitions] or [0]
        self._episodes.append(EpisodeSummary(
            episode.robot_id, episode.episode_id, float(episode.total_reward), episode.length,
            bool(episode.success), int(episode.interventions), intervention_rate(episode),
            int(max(versions)), stored))
        return stored

    # -- what the session shows --------------------------------------------------------------------
    def stored(self) -> tuple[int, int]:
        """(steps, episodes) committed so far."""
        buffer = self.sink.buffer
        return len(buffer), buffer.num_episodes

    def episodes_since(self, index: int) -> list[EpisodeSummary]:
        """The summaries of the episodes this writer committed from `index` on."""
        return self._episodes[index:]

    def close(self) -> None:
        self.sink.close()
        if self.demos is not None:
            self.demos.close()
