import json

import numpy as np
import pytest

from robot_rl.core import CorruptDataError
from robot_rl.runtime.checkpoint import load_latest, save_checkpoint


def test_round_trip_keeps_arrays_key_types_and_tuples(tmp_path):
    state = {
        "opt": {
            "state": {0: {"exp_avg": np.arange(3.0)}},
            "param_groups": [{"betas": (0.9, 0.99)}],
        },
        "rng": {"state": {"key": 2**100, "inc": 7}},
        "big": np.ones((4, 4), np.float32),
        "flag": True,
        "none": None,
    }
    save_checkpoint(tmp_path, 10, state)
    loaded = load_latest(tmp_path)
    assert list(loaded["opt"]["state"]) == [0]  # int keys survive
    np.testing.assert_array_equal(loaded["opt"]["state"][0]["exp_avg"], np.arange(3.0))
    assert loaded["opt"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert loaded["rng"]["state"]["key"] == 2**100
    assert loaded["big"].dtype == np.float32
    assert loaded["flag"] is True and loaded["none"] is None


def test_latest_points_at_the_newest_and_old_ones_are_pruned(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"step": step}, keep=2)
    assert load_latest(tmp_path)["step"] == 4
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-000000003", "ckpt-000000004"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_no_checkpoint_yet_is_none_and_a_damaged_one_is_a_clear_error(tmp_path):
    assert load_latest(tmp_path) is None
    save_checkpoint(tmp_path, 5, {"x": np.zeros(2)})
    (tmp_path / "ckpt-000000005" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(CorruptDataError, match="unreadable.*remove"):
        load_latest(tmp_path)


def test_an_interrupted_write_leaves_the_previous_checkpoint_in_force(tmp_path):
    save_checkpoint(tmp_path, 1, {"v": 1})
    (tmp_path / ".tmp-ckpt-000000002").mkdir()  # a crash mid-write leaves only a temp dir
    assert load_latest(tmp_path)["v"] == 1
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 1


def test_objects_that_cannot_be_stored_without_pickle_are_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot checkpoint a value of type object"):
        save_checkpoint(tmp_path, 1, {"x": object()})
