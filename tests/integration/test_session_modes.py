"""The synchronous twin runs the same parts in lockstep and stores exactly what async stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buffer import ZarrStorage
from tests.integration.sessions import new_session

TINY = ["task.max_steps=15", "learner.warmup_steps=30", "learner.batch_size=16",
        "algo.params.hidden=[16,16]", "run.env_steps=90", "learner.updates_per_step=2",
        "runtime.max_lead=10"]  # async: the robot waits for the learner well inside the budget


@pytest.mark.slow
def test_sync_and_async_store_the_same_schema_and_sync_trains_in_rounds(
        tmp_path: Path, ray_local: None) -> None:
    stores = {}
    for mode in ("async", "sync"):
        session = new_session(tmp_path / mode, *TINY, f"runtime.mode={mode}")
        assert session.run_until_budget()["updates"] > 0
        stores[mode] = ZarrStorage.open_existing(session.run.buffer)
    a, s = stores["async"], stores["sync"]
    assert (a.obs_spec, a.action_spec) == (s.obs_spec, s.action_spec)
    for table in ("steps", "step_info", "episodes"):
        assert a.tables[table].specs == s.tables[table].specs, table
    rounds = [json.loads(ln) for ln in (tmp_path / "sync" / "metrics.jsonl").read_text()
              .splitlines() if "round_updates" in ln]
    assert rounds and all(r["mode"] == "sync" for r in rounds)
    trained = [r for r in rounds if r["round_updates"] > 0]
    assert trained and trained[-1]["updates"] == sum(r["round_updates"] for r in rounds)
    assert all(r["policy_lag"] == 0 for r in rounds)  # lockstep: every robot holds the newest


@pytest.mark.slow
def test_two_makes_of_arm_feed_one_learner(tmp_path: Path, ray_local: None) -> None:
    session = new_session(tmp_path / "run", *TINY, "robots={a: {}, b: {arm: so101, cameras: "
                          "[wrist_cam], image_size: 16, adapter: {drop: [wrist_cam]}}}")
    assert session.run_until_budget()["updates"] > 0
    storage = ZarrStorage.open_existing(session.run.buffer)
    table = storage.read_episodes()
    robots = {storage.robots[int(r)] for r in table["robot_id"]}
    assert robots == {"a", "b"} and "wrist_cam" not in storage.obs_spec
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert set(status["robots"]) == {"a", "b"} and status["parts"]["robot b"]["state"]
