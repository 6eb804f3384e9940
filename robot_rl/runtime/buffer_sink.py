"""The gateway's sink: streams land in a ReplayBuffer, high-water marks in its commit record."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from buffer import CacheConfig, ReplayBuffer
from buffer.checks import check_transitions
from comms.sink import StreamBatch, TransitionSink
from robot_rl.core import ArraySpec, DictSpec, SpecError, Transition

STREAMS_KEY = "streams"
MAX_STREAMS = 4096  # marks in the commit record, which every commit rewrites: bounded
log = logging.getLogger(__name__)
# a sink never samples (learners read the buffer through readers of their own): its cache is the
# smallest pool, two chunks, and not a share of the machine's memory filled with every commit
WRITER_CACHE = CacheConfig(max_transitions=1, background=False)


class BufferSink(TransitionSink):
    """Commits stream batches to `buffer`; each commit stores {"streams": {id: last_seq}} in the
    same atomic record as the rows, so a crash can never separate data from its sequence number.
    One commit takes the batches of any number of streams (group commit: one set of fsyncs).

    Bad data is refused (SpecError) before anything is staged. A commit that fails after staging
    reopens the buffer at its last durable commit, so the failure costs only that commit: the
    next one starts clean (and retries the reopen while the disk keeps failing)."""

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
        self._buffer = ReplayBuffer(self.path, self.obs_spec, self.action_spec, task=self.task,
                                    cache=WRITER_CACHE)
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

    def commit_many(self, batches: Sequence[StreamBatch]) -> list[str | None]:
        buffer = self.buffer
        refusals, accepted = [], []
        streams = set(self._last)
        spec_ok = self._all_on_spec(batches)
        for batch in batches:  # bad data is refused before anything is staged
            refusal = self._refusal(batch, streams, spec_ok)
            refusals.append(refusal)
            if refusal is None:
                accepted.append(batch)
                streams.add(batch.stream_id)
        if accepted:
            try:
                self._commit(buffer, accepted)
            except BaseException:
                self._rollback()
                raise
        return refusals

    def _all_on_spec(self, batches: Sequence[StreamBatch]) -> bool:
        """Whether every transition of every batch fits the specs (one check for the group)."""
        transitions = [t for b in batches for t in b.transitions]
        try:
            if transitions:
                check_transitions(self.obs_spec, self.action_spec, transitions, lambda i: "")
        except SpecError:
            return False
        return True

    def _refusal(self, batch: StreamBatch, streams: set[str], spec_ok: bool) -> str | None:
        """Why `batch` cannot be stored (off the spec, one stream too many), or None;
        `spec_ok`: the whole group is known to fit the specs."""
        if batch.stream_id not in streams and len(streams) >= MAX_STREAMS:
            return (f"stream {batch.stream_id}: the buffer already tracks {MAX_STREAMS} "
                    "streams; start a new run directory for more")
        if spec_ok or not batch.transitions:
            return None
        try:
            check_transitions(self.obs_spec, self.action_spec, batch.transitions,
                              lambda i: f"stream {batch.stream_id} seq {batch.first_seq + i}")
        except SpecError as exc:
            return str(exc)
        return None

    @staticmethod
    def _end(buffer: ReplayBuffer, robot_id: str | None, success: bool) -> None:
        """Close the robot's open episode; an end replayed after a restart may find it closed."""
        if robot_id in buffer.open_episodes:
            buffer.end_episode(success, robot_id)

    def _stage(self, buffer: ReplayBuffer, batches: Sequence[StreamBatch]) -> None:
        """Append the batches' transitions, closing episodes where their ends say: in rounds,
        each round one append of every stream's transitions up to its next episode end."""
        # per batch: runs of (transitions, robot, success of the episode the run ends or None)
        pieces: list[list[tuple[Sequence[Transition], str | None, bool | None]]] = []
        for batch in batches:
            ends = dict(batch.episode_ends)
            robot = (batch.transitions[0].robot_id if batch.transitions
                     else self._robots.get(batch.stream_id))
            if batch.first_seq - 1 in ends:  # the episode before this batch ended (a restart)
                self._end(buffer, robot, ends[batch.first_seq - 1])
            runs: list[tuple[Sequence[Transition], str | None, bool | None]] = []
            start = 0
            for i, t in enumerate(batch.transitions):
                if batch.first_seq + i in ends:
                    runs.append((batch.transitions[start:i + 1], t.robot_id,
                                 ends[batch.first_seq + i]))
                    start = i + 1
            runs.append((batch.transitions[start:], robot, None))
            pieces.append(runs)
        for round_ in range(max(len(runs) for runs in pieces)):
            now = [runs[round_] for runs in pieces if round_ < len(runs)]
            buffer.append([t for transitions, _, _ in now for t in transitions])
            for _, robot, success in now:
                if success is not None:
                    self._end(buffer, robot, success)

    def _commit(self, buffer: ReplayBuffer, batches: Sequence[StreamBatch]) -> None:
        marks = dict(self._last)
        self._stage(buffer, batches)
        for batch in batches:
            marks[batch.stream_id] = max(marks.get(batch.stream_id, -1), batch.last_seq)
        buffer.commit(meta={**buffer.commit_meta, STREAMS_KEY: marks})
        self._last = marks
        for batch in batches:
            if batch.transitions:
                self._robots[batch.stream_id] = batch.transitions[-1].robot_id
