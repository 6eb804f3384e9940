"""The gateway's sink: streams land in a ReplayBuffer, high-water marks in its commit record."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from buffer import ReplayBuffer
from comms.sink import TransitionSink
from robot_rl.core import ArraySpec, DictSpec, SpecError, Transition

STREAMS_KEY = "streams"
MAX_STREAMS = 4096  # marks in the commit record, which every commit rewrites: bounded
log = logging.getLogger(__name__)


class BufferSink(TransitionSink):
    """Commits stream batches to `buffer`; each commit stores {"streams": {id: last_seq}} in the
    same atomic record as the rows, so a crash can never separate data from its sequence number.

    Bad data is refused (SpecError) before anything is staged. A commit that fails after staging
    reopens the buffer at its last durable commit, so the failure costs only that batch: the next
    commit of any stream starts clean (and retries the reopen while the disk keeps failing)."""

    def __init__(self, path: Path, obs_spec: DictSpec, action_spec: ArraySpec,
                 task: str = "default") -> None:
        self.path, self.obs_spec, self.action_spec = Path(path), obs_spec, action_spec
        self.task = task
        self._buffer: ReplayBuffer | None = None
        self._open()

    @property
    def buffer(self) -> ReplayBuffer:
        if self._buffer is None:
            self._open()
        assert self._buffer is not None
        return self._buffer

    def _open(self) -> None:
        """(Re)open the buffer at its last durable commit and read the streams' marks."""
        self._buffer = ReplayBuffer(self.path, self.obs_spec, self.action_spec, task=self.task)
        marks = self._buffer.commit_meta.get(STREAMS_KEY, {})
        self._last = {str(k): int(v) for k, v in marks.items()}
        self._robots: dict[str, str] = {}  # stream id -> robot id of its transitions

    def close(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None

    def _rollback(self) -> None:
        """Forget staged rows and writer state: close and reopen at the last durable commit."""
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None
        try:
            self._open()
        except Exception as exc:  # the disk is still failing: the next commit retries
            log.error("buffer sink: reopening %s after a failed commit failed: %s", self.path, exc)

    def last_seq(self, stream_id: str) -> int:
        self.buffer  # noqa: B018 - reopen first if an earlier rollback could not
        return self._last.get(stream_id, -1)

    def commit(
        self, stream_id: str, first_seq: int, transitions: Sequence[Transition],
        episode_ends: Sequence[tuple[int, bool]] = (),
    ) -> None:
        buffer = self.buffer
        if stream_id not in self._last and len(self._last) >= MAX_STREAMS:
            raise SpecError(f"stream {stream_id}: the buffer already tracks {MAX_STREAMS} "
                            "streams; start a new run directory for more")
        for i, t in enumerate(transitions):  # bad data is refused before anything is staged
            where = f"stream {stream_id} seq {first_seq + i}"
            self.obs_spec.validate(t.obs, f"{where} obs")
            self.obs_spec.validate(t.next_obs, f"{where} next_obs")
            self.action_spec.validate(t.action, f"{where} action")
        try:
            self._commit(buffer, stream_id, first_seq, transitions, dict(episode_ends))
        except BaseException:
            self._rollback()
            raise

    @staticmethod
    def _end(buffer: ReplayBuffer, robot_id: str | None, success: bool) -> None:
        """Close the robot's open episode; an end replayed after a restart may find it closed."""
        if robot_id in buffer.open_episodes:
            buffer.end_episode(success, robot_id)

    def _commit(self, buffer: ReplayBuffer, stream_id: str, first_seq: int,
                transitions: Sequence[Transition], ends: dict[int, bool]) -> None:
        robot = transitions[0].robot_id if transitions else self._robots.get(stream_id)
        if first_seq - 1 in ends:  # the episode before this batch ended (the edge restarted)
            self._end(buffer, robot, ends[first_seq - 1])
        start = 0
        for i, t in enumerate(transitions):
            if first_seq + i in ends:
                buffer.append(transitions[start:i + 1])
                self._end(buffer, t.robot_id, ends[first_seq + i])
                start = i + 1
        if start < len(transitions):
            buffer.append(transitions[start:])
        marks = dict(self._last)
        marks[stream_id] = max(marks.get(stream_id, -1), first_seq + len(transitions) - 1)
        buffer.commit(meta={**buffer.commit_meta, STREAMS_KEY: marks})
        self._last = marks
        if robot is not None:
            self._robots[stream_id] = robot
