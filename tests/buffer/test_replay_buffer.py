"""ReplayBuffer on a real Zarr store: write, commit, reopen, sample, interleaved robots."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from buffer import CacheConfig, ReplayBuffer
from buffer.schema import COMMIT_FILE, STEP_META
from robot_rl.core import Episode, StorageError
from tests.buffer.helpers import ACTION_SPEC, OBS_SPEC, SMALL_CHUNK, check_batch, transition


def make(path: Path, **kw) -> ReplayBuffer:  # type: ignore[no-untyped-def]
    kw.setdefault("chunk_bytes", SMALL_CHUNK)
    kw.setdefault("fsync", False)
    return ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, **kw)


def episode(robot: int, ep: int, length: int, success: bool = True) -> Episode:
    ts = [transition(robot, ep, s, last=s == length - 1) for s in range(length)]
    return Episode(ep, f"robot{robot}", "reach", ts, success)


def test_add_episode_sample_and_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with make(tmp_path / "b") as buf:
        for e in range(7):
            buf.add_episode(episode(0, e, 13, success=e % 2 == 0))
        assert len(buf) == 91 and buf.num_episodes == 7
        check_batch(buf.sample(128, rng))
    with make(tmp_path / "b") as buf:
        assert len(buf) == 91 and buf.num_episodes == 7
        check_batch(buf.sample(128, rng))
        table = buf.episode_table()
        assert list(table["length"]) == [13] * 7
        assert list(table["success"]) == [e % 2 == 0 for e in range(7)]
        assert table["task_name"][0] == "reach" and table["robot_name"][0] == "robot0"
        assert table["total_reward"][1] == pytest.approx(sum(10 + s for s in range(13)))


def test_next_obs_is_not_stored_twice(tmp_path: Path) -> None:
    with make(tmp_path / "b") as buf:
        for e in range(4):
            buf.add_episode(episode(0, e, 40))
        tails = buf.storage.tables["tails"].rows
    # one final observation per episode (a link crossing a chunk boundary costs nothing on
    # disk: the cache brings that observation along with the chunk): 164 obs, not 320
    assert tails == 4
    names = {p.name for p in (tmp_path / "b").iterdir()}
    assert "next_obs" not in names


def test_streaming_interleaved_robots_with_meta(tmp_path: Path) -> None:
    with make(tmp_path / "b") as buf:
        for step in range(30):
            buf.append([transition(0, 0, step), transition(1, 5, step)])
            if step % 7 == 6:
                buf.commit({"acked": {"robot0": step, "robot1": step}})
        buf.end_episode(True, robot_id="robot0")
        with pytest.raises(StorageError, match="no open episode"):
            buf.end_episode(True, robot_id="robot0")
        buf.commit({"acked": {"robot0": 29, "robot1": 29}})
        assert buf.open_episodes == {"robot1": 1}
    with make(tmp_path / "b") as buf:  # the open episode of robot1 continues after reopen
        assert buf.commit_meta == {"acked": {"robot0": 29, "robot1": 29}}
        assert buf.open_episodes == {"robot1": 1}
        buf.append([transition(1, 5, s) for s in range(30, 35)])
        buf.end_episode(False)
        buf.commit()
        check_batch(buf.sample(256, np.random.default_rng(1)))
        table = buf.episode_table()
        assert sorted(table["length"]) == [30, 35]
        assert table["robot_name"][table["length"] == 35][0] == "robot1"
        # every row of robot1's episode is sampleable, including across the reopen boundary
        buf.cache.fill()
        steps = buf.sample(4096, np.random.default_rng(2)).obs["state"]
        assert set(steps[steps[:, 0] == 1][:, 2].astype(int)) == set(range(35))


def test_uncommitted_rows_are_invisible_and_cut_off(tmp_path: Path) -> None:
    with make(tmp_path / "b") as buf:
        buf.add_episode(episode(0, 0, 20))
        buf.append([transition(0, 1, s) for s in range(50)])
        storage = buf.storage
        storage.open_tails.write(storage.commit_no + 1, buf.writer.open_tails())
        for table in storage.tables.values():  # data written, commit record not
            table.write(storage.commit_no + 1)
        assert len(buf) == 20
    with make(tmp_path / "b") as buf:
        assert len(buf) == 20 and buf.num_episodes == 1 and buf.open_episodes == {}
        rows = buf.storage.tables["steps"]
        assert all(buf.storage.group[f"steps/{c}"].shape[0] == rows.sealed for c in rows.specs)
        live = sum(len(t.segments) for t in buf.storage.tables.values()) + len(
            buf.storage.open_tails.files)
        assert len(list((tmp_path / "b" / "wal").iterdir())) == live
        check_batch(buf.sample(64, np.random.default_rng(0)))


def test_commit_cost_does_not_grow_with_the_buffer(tmp_path: Path) -> None:
    def written_bytes(buf: ReplayBuffer) -> int:
        before = {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()}
        buf.add_episode(episode(0, 999, 10))
        after = [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in after if before.get(p) != p.stat().st_mtime_ns)

    with make(tmp_path / "b") as buf:
        costs = []
        for e in range(60):
            buf.add_episode(episode(0, e, 10))
            if e in (5, 59):
                costs.append(written_bytes(buf))
    assert costs[1] < 3 * costs[0] + 20_000, costs


def test_spec_mismatch_and_readonly_errors(tmp_path: Path) -> None:
    with make(tmp_path / "b") as buf:
        buf.add_episode(episode(0, 0, 5))
    with pytest.raises(StorageError, match="observation spec differs"):
        ReplayBuffer(tmp_path / "b", OBS_SPEC.__class__({}), ACTION_SPEC)
    with ReplayBuffer.open_prior(tmp_path / "b") as prior:
        with pytest.raises(StorageError, match="read-only"):
            prior.add_episode(episode(0, 1, 5))
    with pytest.raises(StorageError, match="no robot_rl buffer"):
        ReplayBuffer.open_prior(tmp_path / "missing")


def test_meta_must_be_json_and_is_atomic_with_data(tmp_path: Path) -> None:
    with make(tmp_path / "b") as buf:
        buf.append([transition(0, 0, 0)])
        with pytest.raises(TypeError):
            buf.commit({"bad": object()})
        assert len(buf) == 0
    record = json.loads((tmp_path / "b" / COMMIT_FILE).read_text())
    assert record["tables"]["steps"]["rows"] == 0 and set(STEP_META) >= {"reward", "source"}


def test_small_cache_rotates_every_chunk_in(tmp_path: Path) -> None:
    with make(tmp_path / "b") as buf:
        for e in range(20):
            buf.add_episode(episode(0, e, 16))
    cache = CacheConfig(max_transitions=64, background=False)
    with make(tmp_path / "b", cache=cache) as buf:
        assert buf.cache.n_slots == 4 and len(buf) == 320
        seen: set[int] = set()
        rng = np.random.default_rng(0)
        for _ in range(200):
            batch = buf.sample(32, rng)
            check_batch(batch)
            seen.update(buf.last_rows.tolist())
        assert len(seen) >= 300  # every chunk had its turn (rows without next_obs: none)


def test_background_loader_never_sees_half_committed_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with make(tmp_path / "b", cache=CacheConfig(max_transitions=48)) as buf:
        for e in range(60):
            buf.add_episode(episode(0, e, 13))
            check_batch(buf.sample(32, rng))  # wakes the loader while commits seal chunks
        assert buf.storage.quarantined == {} and buf.cache.loads > 0
    assert not (tmp_path / "b" / "quarantine.json").exists()


def test_rows_added_to_an_evicted_partial_chunk_reload_it_whole(tmp_path: Path) -> None:
    with make(tmp_path / "b", cache=CacheConfig(max_transitions=32, background=False)) as buf:
        buf.append([transition(0, 0, s) for s in range(10)])
        buf.commit()
        with buf.cache.lock:  # the loader evicted chunk 0 just before the next commit
            slot = buf.cache.slot_of.data[0]
            buf.cache.chunk_in_slot[slot], buf.cache.slot_of.data[0] = -1, -1
        buf.append([transition(0, 0, s) for s in range(10, 20)])
        buf.commit()
        rng = np.random.default_rng(0)
        for _ in range(10):
            check_batch(buf.sample(64, rng))
        assert set(buf.sample(2000, rng).obs["state"][:, 2].astype(int)) == set(range(20))


def test_add_episode_refuses_transitions_of_another_robot(tmp_path: Path) -> None:
    buffer = ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC)
    stray = dataclasses.replace(transition(0, 0, 0, last=True), robot_id="other")
    with pytest.raises(StorageError, match=r"holds transitions of \['other'\]"):
        buffer.add_episode(Episode(0, "arm", "reach", [stray], success=True))
    assert len(buffer) == 0 and buffer.num_episodes == 0


def test_one_writer_per_buffer_from_its_creation_on(tmp_path) -> None:
    from robot_rl.core.locks import LockedError

    first = ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC, fsync=False)  # creates it
    with pytest.raises(LockedError, match="is being written by pid"):
        ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC, fsync=False)
    with ReplayBuffer.open_prior(tmp_path / "b") as reader:  # readers never need the lock
        assert len(reader) == 0
    first.close()
    ReplayBuffer(tmp_path / "b", OBS_SPEC, ACTION_SPEC, fsync=False).close()
