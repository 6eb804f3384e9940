"""Damaged buffers: each gives a clear error or a quarantine, never a silent wrong sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from buffer import CacheConfig, ReplayBuffer, ZarrStorage
from buffer.chunk_files import chunk_path
from buffer.record import open_record, sealed_record
from buffer.schema import COMMIT_FILE, PREV_COMMIT_FILE, SCHEMA_VERSION
from robot_rl.core import CorruptDataError, Episode, StorageError
from tests.buffer.helpers import ACTION_SPEC, OBS_SPEC, SMALL_CHUNK, check_batch, transition


def build(path: Path, episodes: int = 6, length: int = 16) -> None:
    with ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, chunk_bytes=SMALL_CHUNK, fsync=False) as buf:
        for e in range(episodes):
            ts = [transition(0, e, s, last=s == length - 1) for s in range(length)]
            buf.add_episode(Episode(e, "robot0", "reach", ts, True))


def chunk_file(path: Path, column: str, chunk: int) -> Path:
    arr = zarr.open_array(str(path / "steps" / column), mode="r")
    return chunk_path(path / "steps" / column, arr, chunk)


def test_a_chunk_with_wrong_but_decodable_data_is_quarantined(tmp_path: Path) -> None:
    build(tmp_path / "b")
    target = chunk_file(tmp_path / "b", "obs/cam", 2)  # a valid chunk with the wrong values
    target.write_bytes(chunk_file(tmp_path / "b", "obs/cam", 3).read_bytes())
    with ReplayBuffer(tmp_path / "b", cache=CacheConfig(background=False), fsync=False) as buf:
        buf.cache.fill()
        assert ("steps", 2) in buf.storage.quarantined
        rng = np.random.default_rng(0)
        for _ in range(20):
            batch = buf.sample(64, rng)
            check_batch(batch)
            assert not np.isin(buf.last_rows // 16, [2]).any()
    report = json.loads((tmp_path / "b" / "quarantine.json").read_text())
    assert report[0]["chunk"] == 2 and "checksum mismatch" in report[0]["reason"]
    problems = ZarrStorage.open_existing(tmp_path / "b").verify()
    assert len(problems) == 1 and "obs/cam chunk 2" in problems[0]
    with ReplayBuffer(tmp_path / "b", fsync=False) as again:  # remembered across reopening
        assert again.index.quarantined.view[32:48].all()
        assert again.index.quarantined.view.sum() == 16


def test_truncated_chunk_file_is_quarantined(tmp_path: Path) -> None:
    build(tmp_path / "b")
    target = chunk_file(tmp_path / "b", "action", 1)
    target.write_bytes(target.read_bytes()[:10])
    storage = ZarrStorage.open_existing(tmp_path / "b", readonly=False)
    problems = storage.verify()
    assert any("action chunk 1: unreadable" in p for p in problems)
    assert storage.quarantined_rows()[16:32].all() and not storage.quarantined_rows()[:16].any()


@pytest.mark.parametrize("damage", ["deleted", "another column's chunk"])
def test_a_chunk_file_that_is_not_its_chunk_is_unreadable(tmp_path: Path, damage: str) -> None:
    build(tmp_path / "b")
    target = chunk_file(tmp_path / "b", "obs/state", 1)
    if damage == "deleted":  # not zarr's fill value: a sealed chunk always has its file
        target.unlink()
    else:  # a valid file of the wrong size
        target.write_bytes(chunk_file(tmp_path / "b", "obs/cam", 1).read_bytes())
    storage = ZarrStorage.open_existing(tmp_path / "b", readonly=False)
    problems = storage.verify()
    assert len(problems) == 1 and "obs/state chunk 1: unreadable" in problems[0]
    assert storage.quarantined_rows()[16:32].all() and storage.quarantined_rows().sum() == 16


def test_a_truncated_wal_segment_costs_only_its_rows(tmp_path: Path) -> None:
    build(tmp_path / "b", episodes=1, length=10)  # 10 rows: all in a WAL segment
    segment = next((tmp_path / "b" / "wal").glob("steps-*.npy"))
    segment.write_bytes(segment.read_bytes()[:100])
    with ReplayBuffer(tmp_path / "b") as buf:
        assert buf.storage.quarantined_rows().all() and len(buf) == 10
        assert "checksum mismatch in a committed WAL segment" in buf.storage.lost[0].reason


def test_damaged_commit_record_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    build(tmp_path / "b", episodes=2)
    record = tmp_path / "b" / COMMIT_FILE
    record.write_text(record.read_text()[:30])
    with ReplayBuffer(tmp_path / "b") as buf:
        assert len(buf) == 16 and buf.num_episodes == 1
    (tmp_path / "b" / COMMIT_FILE).write_text("{")
    (tmp_path / "b" / PREV_COMMIT_FILE).write_text("{")
    with pytest.raises(CorruptDataError, match="unreadable commit record"):
        ReplayBuffer(tmp_path / "b")


def set_version(path: Path, version: object) -> None:
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["schema_version"] = version
    meta.write_text(json.dumps(doc))


@pytest.mark.parametrize(("version", "message"), [
    (SCHEMA_VERSION + 1, "newer than this robot_rl reads"),
    (1, "older than"),
    ("two", "not an integer"),
])
def test_schema_versions_are_checked(tmp_path: Path, version: object, message: str) -> None:
    build(tmp_path / "b", episodes=1)
    set_version(tmp_path / "b", version)
    with pytest.raises(StorageError, match=message):
        ReplayBuffer(tmp_path / "b")
    with pytest.raises(StorageError, match=message):
        ZarrStorage.open_existing(tmp_path / "b")


def test_a_version_2_store_is_read_as_it_is_and_marked_3_by_its_next_writer(
        tmp_path: Path) -> None:
    build(tmp_path / "b", episodes=3)
    set_version(tmp_path / "b", 2)
    for name in (COMMIT_FILE, PREV_COMMIT_FILE):  # records as a version-2 writer left them
        record = open_record((tmp_path / "b" / name).read_bytes())
        (tmp_path / "b" / name).write_bytes(sealed_record({**record, "schema_version": 2}))
    with ReplayBuffer.open_prior(tmp_path / "b") as prior:
        assert len(prior) == 48 and prior.storage.header.version == 2
    with ReplayBuffer(tmp_path / "b", fsync=False) as buf:
        buf.add_episode(Episode(3, "robot0", "reach", [transition(0, 3, s, last=s == 3)
                                                      for s in range(4)], True))
    storage = ZarrStorage.open_existing(tmp_path / "b")
    assert storage.header.version == SCHEMA_VERSION and storage.steps == 52
    assert storage.verify() == []


def test_a_folder_that_is_not_a_buffer(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    zarr.open_group(str(tmp_path / "x"), mode="w")
    (tmp_path / "x" / COMMIT_FILE).write_text("{}")
    with pytest.raises(StorageError, match="not a robot_rl buffer"):
        ReplayBuffer.open_prior(tmp_path / "x")
