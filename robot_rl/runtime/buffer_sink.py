"""The gateway's sink: streams land in a ReplayBuffer, high-water marks in its commit record."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from buffer import ReplayBuffer
from comms.sink import TransitionSink
from robot_rl.core import ArraySpec, DictSpec, StorageError, Transition

log = logging.getLogger(__name__)

STREAMS_KEY = "streams"


class BufferSink(TransitionSink):
    """Commits stream batches to `buffer`; each commit stores {"streams": {id: last_seq}} in the
    same atomic record as the rows, so a crash can never separate data from its sequence number."""

    def __init__(self, path: Path, obs_spec: DictSpec, action_spec: ArraySpec) -> None:
        self.buffer = ReplayBuffer(path, obs_spec, action_spec)
        self.obs_spec, self.action_spec = obs_spec, action_spec
        marks = self.buffer.commit_meta.get(STREAMS_KEY, {})
        self._last = {str(k): int(v) for k, v in marks.items()}
        self._broken: Exception | None = None
        self._open_stream: str | None = None  # whose episode is open in the buffer, if known

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

    def _commit(self, stream_id: str, first_seq: int, transitions: Sequence[Transition],
                ends: dict[int, bool]) -> None:
        if transitions and self._open_stream not in (None, stream_id):
            log.warning("streams %s and %s interleave inside one open episode of %s: the buffer "
                        "keeps one open episode, so their episode table will mix them",
                        self._open_stream, stream_id, self.buffer.storage.path)
        if first_seq - 1 in ends:  # the episode before this batch ended (the edge restarted)
            self.buffer.end_episode(ends[first_seq - 1])
        start = 0
        for i in range(len(transitions)):
            if first_seq + i in ends:
                self.buffer.append(transitions[start:i + 1])
                self.buffer.end_episode(ends[first_seq + i])
                start = i + 1
        if start < len(transitions):
            self.buffer.append(transitions[start:])
        marks = dict(self._last)
        marks[stream_id] = max(marks.get(stream_id, -1), first_seq + len(transitions) - 1)
        self.buffer.commit(meta={**self.buffer.commit_meta, STREAMS_KEY: marks})
        self._last = marks
        last = first_seq + len(transitions) - 1
        if transitions:
            self._open_stream = None if last in ends else stream_id
