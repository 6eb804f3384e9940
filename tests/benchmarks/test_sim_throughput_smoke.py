"""`benchmarks.sim_throughput --quick` end to end: every arm timed, every expert run, the JSON."""

import pytest

from sim import ARMS
from sim.experts import EXPERTS


@pytest.mark.slow
def test_quick_sim_benchmark_times_every_arm_and_runs_every_expert(run_quick) -> None:
    payload, _ = run_quick("sim_throughput")
    results = payload["results"]
    assert [row["arm"] for row in results["throughput"]] == ARMS.names()
    for row in results["throughput"]:
        assert {"control_steps_s", "control_steps_s_2cams", "render_fps_128", "rtf_10hz",
                "rtf_10hz_2cams", "bare_physics_steps_s"} <= set(row)
    assert {(r["arm"], r["task"]) for r in results["experts"]} == {
        (a, t) for a in ARMS.names() for t in EXPERTS.names()}
    assert all(r["episodes"] == 10 for r in results["experts"])
    assert len(payload["targets"]) == 2 * len(ARMS.names()) + len(results["experts"])
