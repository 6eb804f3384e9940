"""The gateway's sink: streams land in a ReplayBuffer, high-water marks in its commit record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from buffer import ReplayBuffer
from comms.sink import TransitionSink
from robot_rl.core import ArraySpec, DictSpec, StorageError, Transition

STREAMS_KEY = "streams"


class BufferSink(TransitionSink):
    """Commits stream batches to `buffer`; each commit stores {"streams": {id: last_seq}} in the
    same atomic record as the rows, so a crash can never separate data from its sequence number."""

    def __init__(self, path: Path, obs_spec: DictSpec, action_spec: ArraySpec,
                 task: str = "default") -> None:
        self.buffer = ReplayBuffer(path, obs_spec, action_spec, task=task)
        self.obs_spec, self.action_spec = obs_spec, action_spec
        marks = self.buffer.commit_meta.get(STREAMS_KEY, {})
        self._last = {str(k): int(v) for k, v in marks.items()}
        self._broken: Exception | None = None
        self._robots: dict[str, str] = {}  # stream id -> robot id of its transitions

    def close(self) -> None:
        self.buffer.close()

    def last_seq(self, stream_id: str) -> int:
        return self._last.get(stream_id, -1)

    def commit(
        self, stream_id: str, first_seq: int, transitions: Sequence[Transition],
        episode_ends: Sequence[tuple[int, bool]] = (),
    ) -> None:
        if self._broken is not None:
            raise StorageError(f"an earlier commit failed ({self._broken}); restart the gateway "
                               "so the buffer reopens at its last durable commit")
        for i, t in enumerate(transitions):  # bad data is refused before anything is staged
            where = f"stream {stream_id} seq {first_seq + i}"
            self.obs_spec.validate(t.obs, f"{where} obs")
            self.obs_spec.validate(t.next_obs, f"{where} next_obs")
            self.action_spec.validate(t.action, f"{where} action")
        try:
            self._commit(stream_id, first_seq, transitions, dict(episode_ends))
        except Exception as exc:  # staged rows may linger in the buffer: refuse further commits
            self._broken = exc
            raise

    def _end(self, robot_id: str | None, success: bool) -> None:
        """Close the robot's open episode; an end replayed after a restart may find it closed."""
        if robot_id in self.buffer.open_episodes:
            self.buffer.end_episode(success, robot_id)

    def _commit(self, stream_id: str, first_seq: int, transitions: Sequence[Transition],
                ends: dict[int, bool]) -> None:
        if transitions:
            self._robots[stream_id] = transitions[0].robot_id
        robot = self._robots.get(stream_id)
        if first_seq - 1 in ends:  # the episode before this batch ended (the edge restarted)
            self._end(robot, ends[first_seq - 1])
        start = 0
        for i, t in enumerate(transitions):
            if first_seq + i in ends:
                self.buffer.append(transitions[start:i + 1])
                self._end(t.robot_id, ends[first_seq + i])
                start = i + 1
        if start < len(transitions):
            self.buffer.append(transitions[start:])
        marks = dict(self._last)
        marks[stream_id] = max(marks.get(stream_id, -1), first_seq + len(transitions) - 1)
        self.buffer.commit(meta={**self.buffer.commit_meta, STREAMS_KEY: marks})
        self._last = marks
