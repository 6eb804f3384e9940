"""`benchmarks.buffer --quick` end to end: every sampler on the same data, the fleet ingest paths,
the JSON's shape."""

import pytest

from benchmarks.buffer import RATIOS


@pytest.mark.slow
def test_quick_buffer_benchmark_times_every_sampler_with_its_coverage(run_quick) -> None:
    payload, stdout = run_quick("buffer")
    results = payload["results"]
    uniform, working = results["uniform"], results["working_set"]
    assert set(uniform) == {"ring", "torchrl", "ours_cache_1.0"}
    assert set(working) == {f"ours_cache_{r}" for r in RATIOS[1:]}
    for sampled in [*uniform.values(), *working.values()]:
        assert {"batches_per_s", "coverage", "batches_per_run", "runs"} <= set(sampled)
    # the TorchRL peer comes with the project's own files (the bench extra), so it is measured
    assert "skipped" not in uniform["torchrl"], uniform["torchrl"]
    assert [t["name"] for t in payload["targets"]] == [
        "cache 1.0 sample rate / RAM ring (equal coverage)",
        "cache 1.0 sample rate / TorchRL memmap (equal coverage)",
        "commit cost, large / small buffer (flat)",
        "gateway-path ingest, 64 streams with group commit, transitions/s"]
    assert set(results["ingest_per_s"]) == {
        "buffer_one_commit_per_round", "gateway_one_commit_per_batch", "gateway_group_commit",
        "robots", "rounds"}
    assert "not a uniform sampler" in stdout
