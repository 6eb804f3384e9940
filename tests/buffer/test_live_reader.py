"""A reader following a live writer in another process: `refresh` sees each new whole commit."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from buffer import ReplayBuffer, zarr_storage
from buffer.record import open_record
from buffer.table import ChunkedTable
from buffer.zarr_storage import wal_files
from robot_rl.core import ConfigError, Episode, StorageError
from tests.buffer.helpers import ACTION_SPEC, OBS_SPEC, SMALL_CHUNK, check_batch, transition
from tests.buffer.test_crash import check_committed, start_writer


def same_as_a_fresh_open(reader: ReplayBuffer) -> None:
    """What refreshes built up equals what opening the same commit from scratch reads."""
    with ReplayBuffer.open_prior(reader.storage.path) as fresh:
        assert fresh.storage.commit_no == reader.storage.commit_no
        for name in ("reward", "episode_id", "step", "prev_row", "robot_id"):
            np.testing.assert_array_equal(reader.index.col(name), fresh.index.col(name))
        np.testing.assert_array_equal(reader.index.next_row.view, fresh.index.next_row.view)
        np.testing.assert_array_equal(reader.index.tail_of.view >= 0,
                                      fresh.index.tail_of.view >= 0)
        for k, v in fresh.episode_table().items():
            np.testing.assert_array_equal(reader.episode_table()[k], v)
        # the checksum log, read only where it grew at each refresh, holds every line
        assert reader.storage.checksums.committed_bytes == fresh.storage.checksums.committed_bytes
        assert reader.storage.checksums.crcs == fresh.storage.checksums.crcs
        # open episodes' next observations, the files read before taken over
        assert reader.index.open_tails.keys() == fresh.index.open_tails.keys()
        for row, tail in fresh.index.open_tails.items():
            for k, v in tail.items():
                np.testing.assert_array_equal(reader.index.open_tails[row][k], v)


@pytest.mark.slow
def test_a_reader_follows_a_writer_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "buf"
    proc = start_writer(path, 3)
    try:
        reader = ReplayBuffer.open_prior(path)
        seen, refreshes = [len(reader)], 0
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            if reader.refresh():
                refreshes += 1
            n = len(reader)
            assert n == reader.commit_meta.get("rows", 0)  # one whole commit, never a torn one
            assert n >= seen[-1] and len(reader.index) == n
            seen.append(n)
            if n:
                check_batch(reader.sample(64, np.random.default_rng(refreshes)))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert refreshes >= 3 and seen[-1] > seen[0]  # it saw the writer's progress, commit by commit
    reader.refresh()
    assert check_committed(path, 0) == len(reader)
    same_as_a_fresh_open(reader)
    reader.close()


def test_refresh_takes_in_new_episodes_and_only_readers_refresh(tmp_path: Path) -> None:
    writer = ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC, fsync=False)
    writer.append([transition(0, 0, s) for s in range(30)])  # an open episode, committed
    writer.commit()
    reader = ReplayBuffer.open_prior(tmp_path / "b")
    assert len(reader) == 30 and reader.num_episodes == 0 and not reader.refresh()
    writer.append([transition(0, 0, s, last=s == 39) for s in range(30, 40)])
    writer.end_episode(True)
    writer.append([transition(1, 1, s) for s in range(5)])
    assert not reader.refresh()  # staged is not committed
    writer.commit()
    assert reader.refresh() and len(reader) == 45 and reader.num_episodes == 1
    batch = reader.sample(500, np.random.default_rng(0))
    check_batch(batch)  # next observations link across the two commits
    assert (batch.obs["state"][:, 2] == 29).any()
    same_as_a_fresh_open(reader)
    with pytest.raises(StorageError, match="only a read-only buffer"):
        writer.refresh()
    reader.close()
    writer.close()


def test_a_refresh_with_nothing_new_reads_only_the_commit_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The learner looks for data every few milliseconds while it waits: looking must not open
    the whole store (~20 ms at 10k rows), only once there is a new commit."""
    writer = ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC, fsync=False)
    writer.add_episode(Episode(0, "robot0", "default",
                               [transition(0, 0, s, last=s == 9) for s in range(10)], True))
    reader = ReplayBuffer.open_prior(tmp_path / "b")
    opened: list[Path] = []
    follow = zarr_storage.ZarrStorage.follow
    monkeypatch.setattr(zarr_storage.ZarrStorage, "follow",
                        lambda self: opened.append(self.path) or follow(self))
    assert not any(reader.refresh() for _ in range(5)) and opened == []
    writer.add_episode(Episode(1, "robot0", "default",
                               [transition(0, 1, s, last=s == 9) for s in range(10)], True))
    assert reader.refresh() and len(reader) == 20 and len(opened) == 1
    same_as_a_fresh_open(reader)
    reader.close()
    writer.close()


def test_a_refresh_reads_only_the_wal_segments_committed_since(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the reader holds of the last commit's WAL is taken over; only segments that commit
    did not list are read (at 64 robots, re-reading a chunk of camera rows each refresh cost the
    learner more than its updates). The result is what a fresh open reads."""
    writer = ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC, chunk_bytes=SMALL_CHUNK,
                          fsync=False)
    writer.append([transition(0, 0, s) for s in range(5)])
    writer.commit()
    reader = ReplayBuffer.open_prior(tmp_path / "b")
    read: list[str] = []
    read_segment = ChunkedTable._read_segment
    monkeypatch.setattr(ChunkedTable, "_read_segment",
                        lambda self, seg: read.append(seg.file) or read_segment(self, seg))
    rng = np.random.default_rng(0)
    for step in range(5, 60, 5):
        had = {seg.file for t in reader.storage.tables.values() for seg in t.segments}
        writer.append([transition(0, 0, s, last=s == 59) for s in range(step, step + 5)])
        if step == 55:
            writer.end_episode(True)
        writer.commit()
        read.clear()
        assert reader.refresh()
        assert read and not set(read) & had
        check_batch(reader.sample(64, rng))
    same_as_a_fresh_open(reader)
    assert len(reader) == 60
    reader.close()
    writer.close()


def test_files_an_older_record_lists_outlive_a_fast_writers_next_commits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader still reading an older commit record finds every file it lists however many
    times the writer committed since, within the grace period; after it they go."""
    path = tmp_path / "b"
    writer = ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, fsync=False)
    writer.append([transition(0, 0, s) for s in range(10)])  # an open episode: a tail file too
    writer.commit()
    listed = {path / f for f in wal_files(open_record((path / "commit.json").read_bytes()))}
    for episode in range(5):  # five commits, each making the previous segments obsolete
        writer.append([transition(0, episode, s) for s in range(10, 20)])
        writer.end_episode(True, robot_id="robot0")
        writer.append([transition(0, episode + 1, s) for s in range(10)])
        writer.commit()
    assert listed and all(f.exists() for f in listed)
    with ReplayBuffer.open_prior(path) as reader:
        assert not reader.storage.lost and len(reader) == 110
    monkeypatch.setattr(zarr_storage, "OBSOLETE_GRACE_S", 0.0)
    writer.append([transition(0, 5, s) for s in range(10, 20)])
    writer.commit()  # files obsolete since before the last two records go now
    still_listed = {path / f for name in ("commit.json", "commit.prev.json")
                    for f in wal_files(open_record((path / name).read_bytes()))}
    assert not any(f.exists() for f in listed - still_listed)
    writer.close()


def test_the_cache_loader_waits_for_chunks_a_refresh_has_not_brought_yet(tmp_path: Path) -> None:
    """A refresh swaps in the newer storage before adding its rows; the loader thread, running
    in between, must not look up chunks the cache has no slot entry for."""
    path = tmp_path / "b"
    writer = ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, chunk_bytes=SMALL_CHUNK, fsync=False)
    writer.append([transition(0, 0, s) for s in range(5)])
    writer.commit()
    with ReplayBuffer.open_prior(path) as reader:
        for episode in range(1, 40):  # many sealed chunks more
            writer.append([transition(0, episode, s) for s in range(20)])
            writer.commit()
        newer = zarr_storage.ZarrStorage.open_existing(path)
        assert newer.tables["steps"].sealed // reader.cache.rows_per_chunk > reader.cache.slot_of.n
        reader.cache.storage = newer  # the moment between the swap and the rows
        reader.cache.rotate_once()
        reader.refresh()
        assert len(reader) == newer.steps
    writer.close()


def test_refreshes_from_two_threads_take_in_each_commit_once(tmp_path: Path) -> None:
    """A learner refreshes from its training thread while a checkpoint refreshes from another:
    each commit's rows enter the reader's index once, never twice."""
    writer = ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC, fsync=False)
    reader = ReplayBuffer.open_prior(tmp_path / "b")
    barrier = threading.Barrier(2)

    def refresh_at_once() -> None:
        barrier.wait()
        reader.refresh()

    for episode in range(30):
        writer.add_episode(Episode(episode, "robot0", "reach", [
            transition(0, episode, s, last=s == 9) for s in range(10)], success=True))
        other = threading.Thread(target=refresh_at_once)
        other.start()
        refresh_at_once()
        other.join()
        assert len(reader.index) == len(reader) == 10 * (episode + 1)
    check_batch(reader.sample(256, np.random.default_rng(0)))
    same_as_a_fresh_open(reader)
    reader.close()
    writer.close()


def test_a_reader_of_some_fields_never_reads_the_others(tmp_path: Path) -> None:
    """A learner whose policy reads the state only: the camera column stays on disk (damaged
    there, it costs nothing), and its batches hold the state alone, the same values as a reader
    of every field draws, through refreshes of a live writer's commits."""
    path = tmp_path / "b"
    writer = ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, chunk_bytes=SMALL_CHUNK, fsync=False)
    writer.append([transition(0, 0, s) for s in range(40)])
    writer.commit()
    for sealed in (path / "steps" / "obs" / "cam").glob("c.*"):
        sealed.write_bytes(b"not zstd")
    state_only = ReplayBuffer.open_prior(path, obs_keys=["state"])
    for episode in range(1, 4):
        writer.append([transition(0, episode, s, last=s == 29) for s in range(30)])
        writer.commit()
        assert state_only.refresh()
    state_only.cache.fill()
    assert list(state_only.cache.pool) == ["obs/state", "action"]
    assert state_only.storage.quarantined == {} and len(state_only) == 130
    batch = state_only.sample(2000, np.random.default_rng(0))
    assert set(batch.obs) == set(batch.next_obs) == {"state"}
    robot, episode, step = batch.obs["state"].T.astype(int)
    assert np.array_equal(batch.next_obs["state"][:, 2], step + 1)
    assert np.array_equal(batch.reward, (episode * 10 + step).astype(np.float32))
    assert len(set(zip(episode, step, strict=True))) > 120  # every chunk, the damaged ones too
    state_only.close()
    with ReplayBuffer.open_prior(path) as every_field:  # the cameras are what was damaged
        every_field.cache.fill()
        assert set(every_field.storage.quarantined) == {("steps", 0), ("steps", 1)}
    writer.close()


def test_choosing_fields_is_for_readers_and_names_what_is_stored(tmp_path: Path) -> None:
    ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC, fsync=False).close()
    with pytest.raises(ConfigError, match=r"\['wrist'\] are not in the stored observation, "
                                          r"which has \['cam', 'state'\]"):
        ReplayBuffer.open_prior(tmp_path / "b", obs_keys=["state", "wrist"])
    with pytest.raises(ConfigError, match="only a read-only buffer samples a subset"):
        ReplayBuffer(tmp_path / "b", obs_keys=["state"])
