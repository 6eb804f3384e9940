"""BufferSink: high-water marks live in the buffer's commit record, episodes close where told."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from buffer import zarr_storage
from comms.gateway import Gateway
from comms.messages import TransitionBatch
from robot_rl.core import SpecError, Transition
from robot_rl.runtime.buffer_sink import BufferSink
from tests.integration.comms_helpers import ACTION_SPEC, OBS_SPEC, numbered


def sink_at(path: Path) -> BufferSink:
    return BufferSink(path, OBS_SPEC, ACTION_SPEC)


def test_marks_survive_reopening_and_are_per_stream(tmp_path: Path) -> None:
    sink = sink_at(tmp_path / "b")
    assert sink.last_seq("a") == -1
    sink.commit("a", 0, [numbered(i) for i in range(5)], [(4, True)])
    sink.commit("b", 0, [numbered(i) for i in range(3)], [(2, False)])
    sink.close()
    reopened = sink_at(tmp_path / "b")
    assert (reopened.last_seq("a"), reopened.last_seq("b")) == (4, 2)
    table = reopened.buffer.episode_table()
    assert list(table["length"]) == [5, 3] and list(table["success"]) == [True, False]


def test_a_sink_holds_two_chunks_in_ram_however_much_it_commits(tmp_path: Path) -> None:
    """The writer never samples: what it commits is not kept in RAM (a long image run filled a
    quarter of the machine's memory in the writer, besides the learner's own cache)."""
    sink = sink_at(tmp_path / "b")
    rows_per_chunk = sink.buffer.cache.rows_per_chunk
    for k in range(5):
        sink.commit("a", k * rows_per_chunk, [numbered(i) for i in range(
            k * rows_per_chunk, (k + 1) * rows_per_chunk)])
    assert sink.buffer.cache.n_chunks() == 5 and sink.buffer.cache.n_slots == 2
    assert sum(v.nbytes for v in sink.buffer.cache.pool.values()) == 2 * rows_per_chunk * sum(
        s.nbytes for s in sink.buffer.cache.specs.values())
    assert len(sink.buffer) == 5 * rows_per_chunk


def test_an_episode_end_for_the_previous_seq_closes_it_before_the_new_rows(tmp_path: Path) -> None:
    sink = sink_at(tmp_path / "b")
    sink.commit("a", 0, [numbered(i) for i in range(4)])  # episode left open by a crash
    sink.commit("a", 4, [numbered(i) for i in range(4, 6)], [(3, False), (5, True)])
    table = sink.buffer.episode_table()
    assert list(table["length"]) == [4, 2] and list(table["success"]) == [False, True]


def test_gateway_dedup_commits_only_the_unseen_tail(tmp_path: Path) -> None:
    sink = sink_at(tmp_path / "b")
    gateway = Gateway(sink, b"x" * 16, "digest")
    batch = TransitionBatch("a", 0, tuple(numbered(i) for i in range(6)), ((5, True),))
    assert gateway.committer.commit([batch]) == {"a": 5}
    replay = TransitionBatch("a", 3, tuple(numbered(i) for i in range(3, 9)), ((5, True),))
    assert gateway.committer.commit([replay]) == {"a": 8}
    assert gateway.committer.commit([replay]) == {"a": 8}  # a full duplicate commits nothing
    wall = sink.buffer.storage.read_steps()["timestamp"]
    np.testing.assert_array_equal(wall, np.arange(9))
    assert list(sink.buffer.episode_table()["length"]) == [6]
    assert gateway.stats["duplicates"] == 3 + 6


def robot_b(i: int) -> Transition:
    return dataclasses.replace(numbered(i), robot_id="b")


def test_a_failed_commit_costs_only_its_batch_and_the_next_commit_starts_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = sink_at(tmp_path / "b")
    sink.commit("a", 0, [numbered(0), numbered(1)])
    real = zarr_storage.fsync_all
    calls = {"n": 0}

    def full_disk_once(paths: list[Path]) -> None:
        paths = list(paths)
        # the commit's one fsync of everything, after the WAL segments and the new record
        if any(p.name.startswith("commit.json") for p in paths) and calls["n"] == 0:
            calls["n"] += 1
            raise OSError(28, "No space left on device")
        real(paths)

    monkeypatch.setattr(zarr_storage, "fsync_all", full_disk_once)
    with pytest.raises(OSError, match="No space left"):
        sink.commit("b", 0, [robot_b(10), robot_b(11)], [(1, True)])
    assert sink.last_seq("b") == -1 and sink.last_seq("a") == 1
    sink.commit("a", 2, [numbered(2)])  # the staged rows of the failed batch are gone
    sink.commit("b", 0, [robot_b(10), robot_b(11)], [(1, True)])
    for reopen in (False, True):  # the live sink, then the buffer as it is on disk
        if reopen:
            sink.close()
        buffer = sink_at(tmp_path / "b").buffer if reopen else sink.buffer
        np.testing.assert_array_equal(buffer.storage.read_steps()["timestamp"], [0, 1, 2, 10, 11])
        assert list(buffer.episode_table()["length"]) == [2]
        assert buffer.commit_meta["streams"] == {"a": 2, "b": 1}


def test_transitions_off_the_spec_are_refused_before_anything_is_staged(tmp_path: Path) -> None:
    sink = sink_at(tmp_path / "b")
    bad = numbered(1)
    bad = type(bad)(**{**vars(bad), "action": np.zeros(7, np.float32)})
    with pytest.raises(SpecError, match=r"stream a seq 1 action: expected shape \(2,\)"):
        sink.commit("a", 0, [numbered(0), bad])
    sink.commit("a", 0, [numbered(0)])  # the sink is not broken by bad input
    assert len(sink.buffer) == 1 and sink.last_seq("a") == 0


def test_the_commit_record_tracks_a_bounded_number_of_streams(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robot_rl.runtime import buffer_sink

    monkeypatch.setattr(buffer_sink, "MAX_STREAMS", 2)
    sink = sink_at(tmp_path / "b")
    sink.commit("a", 0, [numbered(0)])
    sink.commit("b", 0, [robot_b(1)])
    with pytest.raises(SpecError, match="already tracks 2 streams"):
        sink.commit("c", 0, [dataclasses.replace(numbered(2), robot_id="c")])
    sink.commit("a", 1, [numbered(3)])  # known streams go on
    assert sink.buffer.commit_meta["streams"] == {"a": 1, "b": 0}
