"""`benchmarks.obs_roundtrip --quick` end to end: the deployed gateway serving a real SAC policy in
its own process, paired round trips with and without the transition stream, the JSON's shape."""

from benchmarks.obs_roundtrip import CASES


def test_quick_roundtrip_benchmark_times_both_cases_and_writes_its_json(run_quick) -> None:
    payload, stdout = run_quick("obs_roundtrip", timeout=300)
    results = payload["results"]
    for case in CASES:
        for part in ("echo", "gateway", "inference", "overhead"):
            assert results[case][part]["n"] == 60
            assert {"p50_ms", "p99_ms", "mean_ms"} <= set(results[case][part])
    served = results["served"]
    # the deployed path: the policy thread, every request served (10 warm-up pairs per case),
    # and every streamed transition committed to the gateway's buffer
    assert served["inline"] is False
    assert served["actions_served"] == 140
    assert served["transitions_committed"] == 70
    frames = results["frame_bytes"]
    assert frames["response"] < 200 < frames["request"] < frames["transition"]
    assert len(payload["targets"]) == 3
    assert "p99 ratio" in stdout
