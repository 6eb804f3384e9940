"""`benchmarks.validation_cost --quick`: both measurements run and the JSON has its shape."""


def test_quick_validation_cost_measures_checks_and_copy(run_quick) -> None:
    payload, stdout = run_quick("validation_cost")
    batches = payload["results"]["batches"]
    assert set(batches) == {"1", "10"}
    for row in batches.values():
        assert row["decode_checked_us"] > 0 and row["commit_ms"] > 0
    assert payload["results"]["writable_copy_us"] > 0
    assert len(payload["targets"]) == 2 and "round trip's p50" in stdout
