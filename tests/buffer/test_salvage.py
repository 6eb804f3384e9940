"""Salvage: each file of a buffer damaged by a flipped byte or a truncation costs only the rows it
holds; every other committed row is still there, verified row by row, and the run resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from buffer import CacheConfig, ReplayBuffer, ZarrStorage, zarr_storage
from buffer.schema import COMMIT_FILE, PREV_COMMIT_FILE
from buffer.stats import summarize_buffer
from robot_rl.core import CorruptDataError, Episode, StorageError
from tests.buffer.helpers import ACTION_SPEC, OBS_SPEC, SMALL_CHUNK, check_batch, transition

LENGTH, EPISODES, OPEN_STEPS = 10, 30, 5
ROWS = LENGTH * EPISODES + OPEN_STEPS


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A buffer with sealed chunks and WAL segments in every table, and an open episode."""
    path = tmp_path_factory.mktemp("salvage") / "b"
    patch = pytest.MonkeyPatch()
    patch.setattr(zarr_storage, "INFO_CHUNK", 64)  # small chunks: every table has sealed ones
    patch.setattr(zarr_storage, "SMALL_CHUNK", 4)
    try:
        with ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, chunk_bytes=SMALL_CHUNK,
                          fsync=False) as buf:
            for e in range(EPISODES):
                ts = [transition(0, e, s, last=s == LENGTH - 1) for s in range(LENGTH)]
                buf.add_episode(Episode(e, "robot0", "reach", ts, True))
            buf.append([transition(0, EPISODES, s) for s in range(OPEN_STEPS)])
            buf.commit()
    finally:
        patch.undo()
    return path


def expected_state(rows: np.ndarray) -> np.ndarray:
    return np.stack([np.zeros(len(rows)), rows // LENGTH, rows % LENGTH], 1).astype(np.float32)


def assert_intact_rows_are_right(storage: ZarrStorage, rows: int) -> int:
    """Every committed row outside the damage holds exactly what was written; the lost count."""
    assert storage.steps == rows
    lost = storage.quarantined_rows()
    good = np.flatnonzero(~lost)
    info = storage.read_step_info()
    episode, step = good // LENGTH, good % LENGTH
    np.testing.assert_array_equal(info["reward"][good], 10 * episode + step)
    np.testing.assert_array_equal(info["timestamp"][good], 1000.0 + step)
    np.testing.assert_array_equal(info["step"][good], step)
    heavy = storage.read_rows(good)
    np.testing.assert_array_equal(heavy["obs/state"], expected_state(good))
    np.testing.assert_array_equal(heavy["action"], np.stack([episode, step], 1))
    cam = (episode * 7 + step) % 251
    np.testing.assert_array_equal(heavy["obs/cam"][:, 1, 2, 0], cam)
    ended = storage.read_episodes()
    assert set(ended["episode_id"].tolist()) <= set(range(EPISODES))
    assert (ended["length"] == LENGTH).all()
    return int(lost.sum())


def damage_targets(path: Path) -> list[str]:
    """One file of each kind: a sealed chunk and the first and last WAL segment of every
    table, the commit records, the checksum log and the open episode's tail file."""
    files = ["commit.json", "commit.prev.json", "checksums.log"]
    for table, column in [("steps", "obs/cam"), ("steps", "action"), ("step_info", "reward"),
                          ("episodes", "success"), ("tails", "obs/state"), ("tails", "row")]:
        chunk = sorted((path / table / column).glob("c.*"))
        files.append(str([f for f in chunk if f.is_file()][0].relative_to(path)))
    record = json.loads((path / COMMIT_FILE).read_bytes())
    for table in ("steps", "step_info", "episodes", "tails"):
        segments = [s["file"] for s in record["tables"][table]["segments"]]
        files += sorted({segments[0], segments[-1]})
    return files + [f["file"] for f in record["open_tails"]]


def damaged_copy(source: Path, target: Path, name: str, how: str) -> Path:
    shutil.copytree(source, target)
    victim = target / name
    data = bytearray(victim.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    victim.write_bytes(bytes(data))
    return target


def test_the_source_buffer_has_every_kind_of_file(source: Path) -> None:
    targets = damage_targets(source)
    # steps has one unsealed row: one segment; the open episode's tail: one file
    assert len(targets) == len(set(targets)) == 3 + 6 + 7 + 1
    assert all((source / t).is_file() for t in targets)
    assert assert_intact_rows_are_right(ZarrStorage.open_existing(source), ROWS) == 0


@pytest.mark.parametrize("how", ["flip", pytest.param("truncate", marks=pytest.mark.slow)])
@pytest.mark.parametrize("index", range(17))
def test_one_damaged_file_costs_only_its_rows_and_the_run_resumes(
        source: Path, tmp_path: Path, index: int, how: str) -> None:
    name = damage_targets(source)[index]
    path = damaged_copy(source, tmp_path / "b", name, how)
    # the last commit added only the open episode's rows: falling back to the previous record
    rows = ROWS - OPEN_STEPS if name == COMMIT_FILE else ROWS
    storage = ZarrStorage.open_existing(path)
    report = summarize_buffer(storage, verify=True)
    assert report["steps"] == rows
    lost = assert_intact_rows_are_right(storage, rows)
    if name != PREV_COMMIT_FILE:  # (the fallback record is only read when it is needed)
        assert report["problems"], f"{name}: damage was not reported"
    assert lost < 3 * 16 + 64, f"{name}: {lost} rows lost"  # a chunk or segment, not the run
    with ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, fsync=False,
                      cache=CacheConfig(background=False)) as buf:  # resumable
        assert len(buf) == rows
        buf.cache.fill()
        rng = np.random.default_rng(0)
        for _ in range(5):
            check_batch(buf.sample(32, rng))
        buf.add_episode(Episode(99, "robot1", "reach",
                                [transition(1, 99, s, last=s == 3) for s in range(4)], True))
    storage = ZarrStorage.open_existing(path)  # the writer kept what it found in quarantine.json
    assert storage.steps == rows + 4
    np.testing.assert_array_equal(storage.read_step_info()["reward"][rows:],
                                  1000 + 990 + np.arange(4))
    assert_intact_rows_are_right_prefix(storage, rows)


def assert_intact_rows_are_right_prefix(storage: ZarrStorage, rows: int) -> None:
    lost = storage.quarantined_rows()[:rows]
    good = np.flatnonzero(~lost)
    info = storage.read_step_info()
    np.testing.assert_array_equal(info["reward"][good], 10 * (good // LENGTH) + good % LENGTH)
    np.testing.assert_array_equal(storage.read_rows(good)["obs/state"], expected_state(good))


def test_both_commit_records_damaged_is_one_clear_error(source: Path, tmp_path: Path) -> None:
    path = damaged_copy(source, tmp_path / "b", COMMIT_FILE, "truncate")
    (path / PREV_COMMIT_FILE).write_bytes(b"{")
    with pytest.raises(CorruptDataError, match="unreadable commit record"):
        ZarrStorage.open_existing(path)


@pytest.mark.parametrize("name", ["zarr.json", "steps/obs/cam/zarr.json"])
def test_damaged_zarr_metadata_is_one_clear_line(source: Path, tmp_path: Path, name: str) -> None:
    path = damaged_copy(source, tmp_path / "b", name, "flip")
    (path / name).write_bytes(b"\xff\xfe" + (path / name).read_bytes()[2:])  # not UTF-8
    with pytest.raises(StorageError, match="zarr.json") as caught:
        ZarrStorage.open_existing(path)
    assert "\n" not in str(caught.value) and "damaged" in str(caught.value)


def test_wal_merges_never_put_the_whole_run_in_one_segment(source: Path) -> None:
    record = json.loads((source / COMMIT_FILE).read_bytes())
    for name in ("steps", "step_info", "episodes", "tails"):
        table = record["tables"][name]
        largest = max(s["stop"] - s["start"] for s in table["segments"])
        assert largest < max(table["rows"] - table["sealed"], 2), (name, table["segments"])


def test_verify_checks_values_and_names_the_rows(source: Path, tmp_path: Path) -> None:
    path = tmp_path / "b"
    shutil.copytree(source, path)
    with ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, fsync=False) as buf:
        bad = [transition(0, EPISODES, OPEN_STEPS + s) for s in range(2)]
        bad = [type(t)(**{**vars(t), "reward": np.nan}) for t in bad]
        buf.append(bad)  # below the gateway's checks: a writer fed bad values directly
        buf.commit()
    problems = ZarrStorage.open_existing(path).verify()
    assert problems == [f"step_info rows {ROWS}-{ROWS + 1}: reward is NaN or infinite"]


def test_a_crash_between_the_two_renames_of_a_commit_loses_nothing(
        source: Path, tmp_path: Path) -> None:
    path = tmp_path / "b"
    shutil.copytree(source, path)
    (path / COMMIT_FILE).replace(path / PREV_COMMIT_FILE)  # the new record was not renamed yet
    with ReplayBuffer(path, OBS_SPEC, ACTION_SPEC, fsync=False) as buf:  # not a new buffer
        assert len(buf) == ROWS and buf.storage.fallback is None
    assert assert_intact_rows_are_right(ZarrStorage.open_existing(path), ROWS) == 0
