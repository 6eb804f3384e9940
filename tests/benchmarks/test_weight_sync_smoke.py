"""`benchmarks.weight_sync --quick` end to end: a real gateway process, `robot-rl relay`'s
SiteRelay, robots on EdgeLinks, both baselines, the jitter loop, the RLPD patch ratio, and its
JSON."""

from tests.benchmarks.conftest import QuickRun


def test_quick_weight_sync_benchmark_runs_every_case_and_writes_its_json(
        run_quick: QuickRun) -> None:
    payload, stdout = run_quick("weight_sync")
    results = payload["results"]
    for size, nbytes in (("8MB", 8_000_000),):
        assert results[f"{size}/raw_tcp"]["bytes"] == nbytes
        assert results[f"{size}/pickle_one_message"]["seconds"] > 0
        assert results[f"{size}/bare_ws_chunks"]["seconds"] > 0
        full = results[f"{size}/full/1robots/direct"]["wire_bytes_per_robot"]
        assert full == nbytes  # ten layers of float32, nothing else
        assert results[f"{size}/full/1robots/direct/copied"]["copied"]
        for mode, per_robot in (("full", full), ("fp16", full // 2), ("patch", full // 10)):
            for case, upstream in (("1robots/direct", 1), ("4robots/direct", 4),
                                   ("4robots/relay", 1)):
                row = results[f"{size}/{mode}/{case}"]
                assert row["seconds"] > 0 and row["via"] == "bulk" and row["device"] == "cpu"
                # fp16 layers start 64-byte aligned: at most 63 bytes of padding each
                assert per_robot <= row["wire_bytes_per_robot"] < per_robot + 64 * 10
                assert row["upstream_transfers_per_version"] == upstream
    for case in ("jitter/idle", "jitter/syncing"):
        assert results[case]["steps"] == 20 and results[case]["lateness_ms_p99"] >= 0
    assert results["jitter/syncing"]["versions_applied"] >= 1
    assert results["cuda_staging"] is None or results["cuda_staging"]["exact"]
    assert 0 < results["sac_patch"]["ratio"] <= 1.0
    targets = {t["name"]: t for t in payload["targets"]}
    assert targets["relay_upstream_transfers_for_4_robots"]["met"]
    assert targets["patch_vs_full_bytes_one_layer_of_ten_8MB"]["value"] == 0.1
    assert "control_loop_lateness_p99_ms_10hz_during_8MB_sync" in targets
    assert "upstream transfers" in stdout
