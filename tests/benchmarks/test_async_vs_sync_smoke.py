"""`benchmarks.async_vs_sync --quick` end to end: both modes started through `robot-rl train`
(Ray in a loopback-only namespace), evaluated after training, periods read from the runs' logs."""

import pytest

from tests.benchmarks.conftest import QuickRun

pytestmark = pytest.mark.slow


def test_quick_async_vs_sync_runs_both_modes_and_writes_its_json(run_quick: QuickRun,
                                                                   tmp_path) -> None:
    payload, stdout = run_quick("async_vs_sync", "--work", str(tmp_path / "runs"))
    results = payload["results"]
    for mode in ("sync", "async"):
        (run,) = results["runs"][mode]
        assert run["mode"] == mode and run["updates"] > 0 and run["episodes"] > 0
        assert run["generation_s_per_episode"] > 0 and run["training_s_per_update"] > 0
        assert run["curve"]["env_steps"] and run["curve"]["env_steps"][-1] >= 300
        assert all(0.0 <= s <= 1.0 for s in run["curve"]["success"])
    assert results["generation_speedup"] > 0 and results["training_speedup"] > 0
    assert [t["target"] for t in payload["targets"]] == [4.61, 1.55, 1.0]
    assert "async vs sync" in stdout
