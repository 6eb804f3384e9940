"""`benchmarks.fleet --quick` end to end: episodes recorded with the real sim, played back by real
edge links into one gateway and buffer, every transition found exactly once; the JSON's shape."""

import pytest

FLEET_KEYS = {"robots", "published", "committed_per_s", "slowest_window_per_s", "lost",
              "duplicated", "strangers", "out_of_order", "bad_reward", "bad_mark", "bad_images",
              "commit_ms_p50", "commit_ms_p99", "ack_lag_ms_p50", "ack_lag_ms_p99",
              "transitions_per_commit", "gateway_cpu_ms_per_transition",
              "edge_cpu_ms_per_transition"}


@pytest.mark.slow
def test_quick_fleet_benchmark_streams_every_transition_exactly_once(run_quick) -> None:
    payload, stdout = run_quick("fleet", "--sizes", "4,64", "--seconds", "3")
    results = payload["results"]
    assert set(results["fleets"]) == {"4", "64"}
    for robots, fleet in results["fleets"].items():
        assert FLEET_KEYS <= set(fleet)
        assert fleet["published"] >= int(robots) * 20  # 3 s at 10 Hz, give or take a tick
        assert fleet["rows"] == fleet["published"], fleet  # all of it reached the buffer ...
        for kind in ("lost", "duplicated", "strangers", "out_of_order", "bad_reward", "bad_mark",
                     "bad_images"):
            assert fleet[kind] == 0, (robots, kind, fleet[kind])  # ... each exactly once, intact
    assert "played back: the robots" in stdout and results["recorded_steps"] > 0
    assert [t["name"] for t in payload["targets"]] == [
        "64 robots: image transitions/s committed over 3 s",
        "64 robots: slowest 10 s window, transitions/s",
        "64 robots: transitions lost, duplicated or altered"]
