"""Group commit: every batch that edges sent while one durable commit ran goes into the next one.

A sink commit costs a few fsyncs whatever it holds, so committing each edge's batch on its own
caps a gateway at a few dozen commits per second for all its robots together. Here the first
batch to arrive starts a commit on the sink's thread; batches that arrive meanwhile, from any
edge, wait and then share the next commit (up to MAX_GROUP_TRANSITIONS, in arrival order). A
stream still takes exactly its next seq (a resend is trimmed, a gap refused), each stream's mark
is committed with its rows, and an edge is acked only once the commit holding its rows is
durable; the batches of an edge that went before their commit started are dropped (it resends
them). Data the sink refuses costs only its stream's edge; a commit that fails costs every edge
in it a reconnect and a resend (nothing was acked).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from comms.messages import ProtocolError, TransitionBatch
from comms.sink import StreamBatch, TransitionSink
from robot_rl.core import CommsError, StorageError, Transition

log = logging.getLogger(__name__)
Outcome = dict[str, int | Exception]  # stream -> its mark once committed, or why it failed
# transitions one commit takes (whole submissions, first come first served; at least one): a
# commit's rows are held in RAM until written, ~200 KB each with two 128 px cameras
MAX_GROUP_TRANSITIONS = 1024


def _size(batches: Sequence[TransitionBatch]) -> int:
    return sum(len(b.transitions) for b in batches)


def merge_contiguous(batches: Sequence[TransitionBatch]) -> list[TransitionBatch]:
    """Join batches of a stream that follow each other seamlessly, keeping stream order."""
    merged: dict[str, list[TransitionBatch]] = {}
    for batch in batches:
        runs = merged.setdefault(batch.stream_id, [])
        prev = runs[-1] if runs else None
        if prev is not None and batch.first_seq == prev.first_seq + len(prev.transitions):
            runs[-1] = TransitionBatch(prev.stream_id, prev.first_seq,
                                       prev.transitions + batch.transitions,
                                       prev.episode_ends + batch.episode_ends)
        else:
            runs.append(batch)
    return [batch for runs in merged.values() for batch in runs]


class GroupCommitter:
    """Commits what edges `submit`, one sink commit at a time, each holding every batch that
    waited for it. `run_in_sink` runs a call on the sink's thread (with the commit timeout)."""

    def __init__(self, sink: TransitionSink, run_in_sink: Callable[[Callable[[], Any]],
                 Awaitable[Any]], stats: Counter[str]) -> None:
        self.sink, self.run_in_sink, self.stats = sink, run_in_sink, stats
        self._waiting: list[tuple[list[TransitionBatch], asyncio.Future[Outcome]]] = []
        self._leader: asyncio.Task[None] | None = None

    async def submit(self, batches: list[TransitionBatch]) -> Outcome:
        """Commit `batches` (of one edge) with whatever else is waiting; per stream, the mark to
        ack or the error that drops the edge."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((batches, future))
        if self._leader is None:
            self._leader = asyncio.create_task(self._commit_while_waiting())
        return await future

    async def _commit_while_waiting(self) -> None:
        try:
            while self._drop_abandoned():
                group, size = [], 0
                while self._waiting and (not group or size + _size(self._waiting[0][0])
                                         <= MAX_GROUP_TRANSITIONS):
                    group.append(self._waiting.pop(0))
                    size += _size(group[-1][0])
                batches = [b for submitted, _ in group for b in submitted]
                try:
                    outcome: Outcome = await self.run_in_sink(lambda b=batches: self.commit(b))
                except Exception as exc:  # the sink thread timed out or is gone
                    outcome = {b.stream_id: CommsError(f"commit failed ({exc}); reconnect and "
                                                       "resend") for b in batches}
                for submitted, future in group:
                    if not future.done():  # (its edge may have gone during the commit)
                        future.set_result({b.stream_id: outcome[b.stream_id] for b in submitted})
        finally:
            self._leader = None

    def _drop_abandoned(self) -> bool:
        """Forget the batches of edges that went while they waited (each resends after
        reconnecting); whether any batch still waits."""
        self._waiting = [w for w in self._waiting if not w[1].done()]
        return bool(self._waiting)

    def commit(self, batches: Sequence[TransitionBatch]) -> Outcome:
        """On the sink's thread: commit the part of `batches` the sink has not seen, in one
        sink commit; per stream, the new high-water mark or the error for its edge."""
        outcome: Outcome = {}
        fresh: list[StreamBatch] = []
        by_stream: dict[str, list[TransitionBatch]] = {}
        for batch in merge_contiguous(batches):
            by_stream.setdefault(batch.stream_id, []).append(batch)
        for stream, runs in by_stream.items():
            batch, outcome[stream] = self._fresh(stream, runs)
            if batch is not None:
                fresh.append(batch)
        if not fresh:
            return outcome
        try:
            refusals = self.sink.commit_many(fresh)
        except Exception as exc:
            self.stats["commit_errors"] += 1
            log.error("gateway: a commit of %d streams failed (rolled back): %s", len(fresh),
                      exc, exc_info=not isinstance(exc, StorageError | OSError))  # a bug: trace
            failed = CommsError(f"commit failed ({exc}); reconnect and resend")
            return {**outcome, **{b.stream_id: failed for b in fresh}}
        for batch, refusal in zip(fresh, refusals, strict=True):
            if refusal is None:
                self.stats["committed"] += len(batch.transitions)
            else:
                self.stats["batches_refused"] += 1
                outcome[batch.stream_id] = ProtocolError(f"batch refused: {refusal}")
        return outcome

    def _fresh(self, stream: str, runs: list[TransitionBatch]
               ) -> tuple[StreamBatch | None, int | Exception]:
        """The part of a stream's batches (in order) that follows its mark, and the mark it
        reaches; a batch starting past the mark (a gap) ends the stream's part with an error.

        A stream takes exactly its next seq (or a resend of what it holds): a gap is refused,
        and the edge resends from its spool after reconnecting."""
        mark = self.sink.last_seq(stream)
        first = mark + 1
        transitions: list[Transition] = []
        ends: list[tuple[int, bool]] = []
        for batch in runs:
            if batch.first_seq > mark + 1:
                self.stats["gaps"] += 1
                error = ProtocolError(f"stream {stream} holds seqs up to {mark}, the batch "
                                      f"starts at {batch.first_seq}: resend from {mark + 1}")
                return self._batch(stream, first, transitions, ends), error
            skip = max(0, mark + 1 - batch.first_seq)
            fresh_from = batch.first_seq + skip
            ends += [(s, ok) for s, ok in batch.episode_ends
                     if s >= fresh_from or (s == fresh_from - 1 and skip == 0)]
            self.stats["duplicates"] += min(skip, len(batch.transitions))
            transitions += batch.transitions[skip:]
            mark = max(mark, batch.first_seq + len(batch.transitions) - 1)
        return self._batch(stream, first, transitions, ends), mark

    @staticmethod
    def _batch(stream: str, first: int, transitions: list[Transition],
               ends: list[tuple[int, bool]]) -> StreamBatch | None:
        return StreamBatch(stream, first, transitions, ends) if transitions or ends else None
