"""`benchmarks.fleet --quick` end to end: episodes recorded with the real sim, played back by real
edge links into an edge-only session's gateway, writer and learner, every transition found
exactly once, the learner training and its versions reaching the robots; the JSON's shape."""

import pytest

FLEET_KEYS = {"robots", "published", "committed_per_s", "slowest_window_per_s", "lost",
              "duplicated", "strangers", "out_of_order", "bad_reward", "bad_mark", "bad_images",
              "commit_ms_p50", "commit_ms_p99", "ack_lag_ms_p50", "ack_lag_ms_p99",
              "transitions_per_commit", "gateway_cpu_ms_per_transition",
              "edge_cpu_ms_per_transition", "updates_per_s", "weight_sync_ms_p50",
              "weight_sync_ms_p99", "policy_lag_p50", "policy_lag_p99", "versions_streamed",
              "learner_cores", "learner_cpu_ms_per_update"}


@pytest.mark.slow
def test_quick_fleet_benchmark_streams_every_transition_exactly_once(run_quick) -> None:
    payload, stdout = run_quick("fleet", "--sizes", "1,64", "--seconds", "5")
    results = payload["results"]
    assert set(results["fleets"]) == {"1", "64"}
    for robots, fleet in results["fleets"].items():
        assert FLEET_KEYS <= set(fleet)
        assert fleet["published"] >= int(robots) * 40  # 5 s at 10 Hz, give or take a tick
        assert fleet["rows"] == fleet["published"], fleet  # all of it reached the buffer ...
        for kind in ("lost", "duplicated", "strangers", "out_of_order", "bad_reward", "bad_mark",
                     "bad_images"):
            assert fleet[kind] == 0, (robots, kind, fleet[kind])  # ... each exactly once, intact
        assert fleet["updates_per_s"] > 0, fleet  # the learner trained on what the fleet sent
        assert fleet["versions_streamed"] > 0 and fleet["weight_syncs"] > 0, fleet  # ... and
        assert 0 < fleet["weight_sync_ms_p50"] <= fleet["weight_sync_ms_p99"] < 30_000  # its
        assert 0 <= fleet["policy_lag_p50"] <= fleet["policy_lag_p99"]  # versions reached them
    assert "played back: the robots" in stdout and results["recorded_steps"] > 0
    assert [t["name"] for t in payload["targets"]] == [
        "64 robots: image transitions/s committed over 5 s",
        "64 robots: slowest 10 s window, transitions/s",
        "64 robots: transitions lost, duplicated or altered",
        "learner updates/s, 64 robots / 1"]
