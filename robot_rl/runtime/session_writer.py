"""The session's one buffer writer: every robot's episodes and every edge's streams land here.

Env workers commit whole episodes as numbered streams, exactly like edges do through the gateway
(`BufferSink`), so a worker restarted after a crash resumes its stream where the buffer left it:
nothing lost, nothing stored twice. Demo-side steps (takeovers) also go to the run's demo side.
Calls may come from several threads (workers' remote calls, the gateway's sink thread): they run
one at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from buffer import ReplayBuffer
from comms.sink import StreamBatch, TransitionSink
from robot_rl.core import ArraySpec, DictSpec, Episode, Transition, is_demo_side
from robot_rl.runtime.buffer_sink import BufferSink
from robot_rl.runtime.demo_mirror import DemoSideMirror
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
    policy_version: int
    stored_steps: int  # the buffer's size once it was committed

    @property
    def intervention_rate(self) -> float:
        return self.interventions / self.length if self.length else 0.0


@dataclass
class _OpenEpisode:
    """An edge episode streamed so far: its figures and its demo-side steps (not its frames)."""

    episode_id: int
    total_reward: float = 0.0
    length: int = 0
    interventions: int = 0
    policy_version: int = 0
    demo_side: list[Transition] = field(default_factory=list)

    def add(self, t: Transition) -> None:
        self.total_reward += t.reward
        self.length += 1
        self.interventions += int(t.intervened)
        self.policy_version = max(self.policy_version, t.policy_version)
        if is_demo_side(t.source, t.intervened):
            self.demo_side.append(t)


class SessionWriter(TransitionSink):
    """Owns the run's buffer (and its demo side, with RLPD); commits are durable on return."""

    def __init__(self, run: RunDir, obs_spec: DictSpec, action_spec: ArraySpec, task: str,
                 demos: ReplayBuffer | None = None) -> None:
        self.sink = BufferSink(run.buffer, obs_spec, action_spec, task=task)
        self.task = task
        self.demos = (DemoSideMirror(demos, run.buffer, self.sink.buffer.num_episodes)
                      if demos is not None else None)
        self._lock = threading.RLock()
        self._episodes: list[EpisodeSummary] = []
        self._next_episode = self.sink.buffer.num_episodes
        self._open: dict[str, _OpenEpisode] = {}  # edge robot -> its episode streamed so far

    # -- the TransitionSink an edge gateway commits through ---------------------------------------
    def last_seq(self, stream_id: str) -> int:
        with self._lock:
            return self.sink.last_seq(stream_id)

    def commit_many(self, batches: Sequence[StreamBatch]) -> list[str | None]:
        with self._lock:
            refusals = self.sink.commit_many(batches)
            ended = [self._follow_stream(b) for b, refusal in zip(batches, refusals, strict=True)
                     if refusal is None]
            # the buffer closes the k-th episode ending in each batch in its k-th round, after
            # any episode a batch's first step says ended before it (BufferSink._stage)
            position = self.sink.buffer.num_episodes - sum(map(len, ended))
            for k in range(max(map(len, ended), default=0)):
                for episodes in ended:
                    if k < len(episodes):
                        self._ended(*episodes[k], position)
                        position += 1
            return refusals

    def _follow_stream(self, batch: StreamBatch) -> list[tuple[str, _OpenEpisode, bool]]:
        """Add the batch's steps to their robot's open episode; the episodes it ended, in order."""
        ends, ended = dict(batch.episode_ends), []
        for i, t in enumerate(batch.transitions):
            episode = self._open.get(t.robot_id)
            if episode is None or episode.episode_id != t.episode_id:
                episode = self._open[t.robot_id] = _OpenEpisode(t.episode_id)
            episode.add(t)
            if batch.first_seq + i in ends:
                del self._open[t.robot_id]
                ended.append((t.robot_id, episode, ends[batch.first_seq + i]))
        return ended

    def _ended(self, robot_id: str, episode: _OpenEpisode, success: bool, position: int) -> None:
        if self.demos is not None:  # RLPD: takeovers feed the demo side
            self.demos.add(position, Episode(episode.episode_id, robot_id, self.task,
                                             episode.demo_side, success))
        self._episodes.append(EpisodeSummary(
            robot_id, episode.episode_id, episode.total_reward, episode.length, success,
            episode.interventions, episode.policy_version, len(self.sink.buffer)))

    # -- env workers -------------------------------------------------------------------------------
    def next_episode_id(self) -> int:
        """A session-wide episode number (workers of one session never share one)."""
        with self._lock:
            self._next_episode += 1
            return self._next_episode - 1

    def commit_episode(self, stream_id: str, first_seq: int, episode: Episode) -> int:
        """Commit one whole episode of a worker's stream (a replay of a committed one is skipped);
        its demo-side steps also feed the demo side. Returns the buffer's size."""
        with self._lock:
            last = first_seq + episode.length - 1
            if last <= self.sink.last_seq(stream_id):
                return len(self.sink.buffer)  # committed before the worker restarted
            self.sink.commit(stream_id, first_seq, episode.transitions, [(last, episode.success)])
            summary = _OpenEpisode(episode.episode_id)
            for t in episode.transitions:
                summary.add(t)
            position = self.sink.buffer.num_episodes - 1
            self._ended(episode.robot_id, summary, bool(episode.success), position)
            return len(self.sink.buffer)

    # -- what the session shows --------------------------------------------------------------------
    def stored(self) -> tuple[int, int]:
        """(steps, episodes) committed so far."""
        with self._lock:
            buffer = self.sink.buffer
            return len(buffer), buffer.num_episodes

    def episodes_since(self, index: int) -> list[EpisodeSummary]:
        """The summaries of the episodes this writer committed from `index` on."""
        with self._lock:
            return self._episodes[index:]

    def close(self) -> None:
        with self._lock:
            self.sink.close()
            if self.demos is not None:
                self.demos.close()
