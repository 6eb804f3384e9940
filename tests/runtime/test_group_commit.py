"""Group commit over a real BufferSink: batches of many streams share one durable commit, each
stream still takes exactly its next seq, and a bad or failed batch costs only what it must."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from buffer import zarr_storage
from comms.group_commit import GroupCommitter
from comms.messages import ProtocolError, TransitionBatch
from comms.sink import StreamBatch
from robot_rl.core import CommsError, Transition
from robot_rl.runtime.buffer_sink import BufferSink
from tests.integration.comms_helpers import ACTION_SPEC, OBS_SPEC, numbered


def of(stream: str, i: int) -> Transition:
    return dataclasses.replace(numbered(i), robot_id=stream)


def batch(stream: str, first: int, n: int, ends: tuple[tuple[int, bool], ...] = ()
          ) -> TransitionBatch:
    return TransitionBatch(stream, first, tuple(of(stream, i) for i in range(first, first + n)),
                           ends)


def committer_over(path: Path) -> tuple[GroupCommitter, BufferSink, Counter[str]]:
    sink, stats = BufferSink(path, OBS_SPEC, ACTION_SPEC), Counter[str]()

    async def inline(fn: Callable[[], Any]) -> Any:
        return fn()

    return GroupCommitter(sink, inline, stats), sink, stats


def rows_of(sink: BufferSink, stream: str) -> list[float]:
    steps = sink.buffer.storage.read_steps()
    robot = sink.buffer.storage.robots.index(stream)
    return steps["timestamp"][steps["robot_id"] == robot].tolist()


def test_many_streams_share_one_commit_with_every_mark(tmp_path: Path) -> None:
    committer, sink, stats = committer_over(tmp_path / "b")
    before = sink.buffer.storage.commit_no
    outcome = committer.commit([batch("a", 0, 3), batch("b", 0, 2, ((1, True),)),
                                batch("a", 3, 2), batch("c", 0, 1)])
    assert outcome == {"a": 4, "b": 1, "c": 0}
    assert sink.buffer.storage.commit_no == before + 1  # one durable commit for all three
    assert sink.buffer.commit_meta["streams"] == {"a": 4, "b": 1, "c": 0}
    assert rows_of(sink, "a") == [0, 1, 2, 3, 4] and rows_of(sink, "b") == [0, 1]
    assert list(sink.buffer.episode_table()["length"]) == [2]
    assert stats["committed"] == 8


def test_resends_are_trimmed_and_a_gap_stops_only_its_stream(tmp_path: Path) -> None:
    committer, sink, stats = committer_over(tmp_path / "b")
    committer.commit([batch("a", 0, 4), batch("b", 0, 4)])
    outcome = committer.commit([batch("a", 2, 4), batch("a", 0, 3),  # overlap, full resend
                                batch("b", 4, 1), batch("b", 9, 2)])  # next, then a gap
    assert outcome["a"] == 5
    assert isinstance(outcome["b"], ProtocolError)
    assert "holds seqs up to 4, the batch starts at 9: resend from 5" in str(outcome["b"])
    assert rows_of(sink, "a") == list(range(6)) and rows_of(sink, "b") == list(range(5))
    assert sink.buffer.commit_meta["streams"] == {"a": 5, "b": 4}
    assert stats["duplicates"] == 2 + 3 and stats["gaps"] == 1


def test_a_batch_off_the_spec_is_refused_and_its_neighbours_commit(tmp_path: Path) -> None:
    committer, sink, stats = committer_over(tmp_path / "b")
    bad = batch("m", 0, 2)
    bad = dataclasses.replace(bad, transitions=(bad.transitions[0], dataclasses.replace(
        bad.transitions[1], obs={"state": np.full(3, np.nan, np.float32),
                                 "image": np.zeros((16, 16, 3), np.uint8)})))
    outcome = committer.commit([batch("a", 0, 2), bad, batch("b", 0, 1)])
    assert outcome["a"] == 1 and outcome["b"] == 0
    assert isinstance(outcome["m"], ProtocolError)
    assert str(outcome["m"]) == "batch refused: stream m seq 1 obs['state']: contains NaN or " \
                                "infinity"
    assert sink.buffer.storage.robots == ["a", "b"]  # nothing of m was staged
    assert stats["batches_refused"] == 1 and stats["committed"] == 3


def test_a_failed_commit_fails_its_whole_group_and_the_next_one_starts_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    committer, sink, stats = committer_over(tmp_path / "b")
    committer.commit([batch("a", 0, 1)])
    real = zarr_storage.fsync_all
    failures = iter([OSError(5, "Input/output error")])

    def disk_error_once(paths: Any) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        real(paths)

    monkeypatch.setattr(zarr_storage, "fsync_all", disk_error_once)
    outcome = committer.commit([batch("a", 1, 2), batch("b", 0, 2)])
    assert all(isinstance(r, CommsError) and "reconnect and resend" in str(r)
               for r in outcome.values())
    assert sink.buffer.commit_meta["streams"] == {"a": 0}  # nothing of the group
    assert committer.commit([batch("a", 1, 2), batch("b", 0, 2)]) == {"a": 2, "b": 1}
    assert rows_of(sink, "a") == [0, 1, 2] and rows_of(sink, "b") == [0, 1]
    assert stats["commit_errors"] == 1


class SlowSink(BufferSink):
    """A BufferSink whose commits take a while, noting how many transitions each held."""

    sizes: list[int]

    @property
    def commits(self) -> int:
        return len(self.sizes)

    def commit_many(self, batches: Sequence[StreamBatch]) -> list[str | None]:
        time.sleep(0.05)
        self.sizes = [*getattr(self, "sizes", []), sum(len(b.transitions) for b in batches)]
        return super().commit_many(batches)


def submitted_together(sink: SlowSink, per_edge: int, edges: int = 16
                       ) -> list[dict[str, int | Exception]]:
    """`edges` edges each submitting `per_edge` one-transition batches, one after another."""
    lock = threading.Lock()  # the gateway's sink thread: one call at a time

    async def scenario() -> list[dict[str, int | Exception]]:
        loop = asyncio.get_running_loop()

        async def in_sink(fn: Callable[[], Any]) -> Any:
            return await loop.run_in_executor(None, lambda: _locked(lock, fn))

        committer = GroupCommitter(sink, in_sink, Counter())

        async def edge(k: int) -> list[dict[str, int | Exception]]:
            return [await committer.submit([batch(f"s{k}", i, 1)]) for i in range(per_edge)]

        done = await asyncio.gather(*(edge(k) for k in range(edges)))
        return [o for outcomes in done for o in outcomes]

    return asyncio.run(scenario())


def test_edges_submitting_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    sink = SlowSink(tmp_path / "b", OBS_SPEC, ACTION_SPEC)
    outcomes = submitted_together(sink, 5)
    assert len(outcomes) == 80 and all(not isinstance(v, Exception)
                                       for o in outcomes for v in o.values())
    assert sink.commits <= 16  # 80 batches in far fewer commits
    assert sink.buffer.commit_meta["streams"] == {f"s{k}": 4 for k in range(16)}
    for k in range(16):
        assert rows_of(sink, f"s{k}") == list(range(5))


def _locked(lock: threading.Lock, fn: Callable[[], Any]) -> Any:
    with lock:
        return fn()


def test_a_backlog_is_committed_in_groups_of_bounded_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from comms import group_commit

    monkeypatch.setattr(group_commit, "MAX_GROUP_TRANSITIONS", 3)
    sink = SlowSink(tmp_path / "b", OBS_SPEC, ACTION_SPEC)
    outcomes = submitted_together(sink, 2)
    assert all(not isinstance(v, Exception) for o in outcomes for v in o.values())
    assert sum(sink.sizes) == 32 and max(sink.sizes) <= 3, sink.sizes
    assert sink.buffer.commit_meta["streams"] == {f"s{k}": 1 for k in range(16)}


def test_the_batches_of_an_edge_gone_before_its_commit_are_not_held(tmp_path: Path) -> None:
    """An edge dropped while its batches wait for a commit resends them after reconnecting;
    the gateway does not keep (or commit) the orphaned copy meanwhile."""
    sink = SlowSink(tmp_path / "b", OBS_SPEC, ACTION_SPEC)

    async def scenario() -> tuple[dict[str, int | Exception], GroupCommitter]:
        loop = asyncio.get_running_loop()

        async def in_sink(fn: Callable[[], Any]) -> Any:
            return await loop.run_in_executor(None, fn)

        committer = GroupCommitter(sink, in_sink, Counter())
        first = asyncio.create_task(committer.submit([batch("a", 0, 2)]))  # starts a commit
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(committer.submit([batch("b", 0, 3)]))  # waits for the next
        await asyncio.sleep(0.01)
        gone.cancel()  # its edge's connection ended
        outcome = await first
        while committer._leader is not None:  # until nothing waits
            await asyncio.sleep(0.01)
        return outcome, committer

    outcome, committer = asyncio.run(scenario())
    assert outcome == {"a": 1} and sink.sizes == [2]
    assert sink.buffer.commit_meta["streams"] == {"a": 1}
