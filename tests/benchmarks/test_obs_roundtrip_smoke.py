"""`benchmarks.obs_roundtrip --quick` end to end: a cloud-side process, paired round trips, JSON."""

import json
import subprocess
import sys


def test_quick_roundtrip_benchmark_times_both_paths_and_writes_its_json(tmp_path) -> None:
    out = tmp_path / "obs_roundtrip.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.obs_roundtrip", "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr  # 1: a target missed on a busy machine
    results = json.loads(out.read_text())["results"]
    for path, n in (("loopback", 60), ("rtt50ms", 20), ("loopback_paced_100hz", 20)):
        for side in ("echo", "gateway"):
            assert results[f"{side}_{path}"]["n"] == n
            assert 0 < results[f"{side}_{path}"]["p50_ms"] <= results[f"{side}_{path}"]["p99_ms"]
    assert results["gateway_rtt50ms"]["p50_ms"] > 50  # the emulated WAN was in the way
    # every round trip (10 warm-up pairs per path included) was served, and where is recorded
    placement = results["policy_placement"]
    assert placement["actions_served"] == 130 and placement["inline"] in (True, False)
    assert "p99 ratio" in result.stdout
