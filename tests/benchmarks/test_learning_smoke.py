"""`benchmarks.learning --quick` end to end: real sessions, the scripted teleop, the JSON."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_quick_learning_benchmark_trains_through_the_cli_and_evaluates_checkpoints(
        run_quick) -> None:
    payload, _ = run_quick("learning", "--seeds", "1", "--parts", "pick_cube,throughput")
    pick = payload["results"]["pick_cube_rlpd_vs_sac"]
    rlpd, sac = pick["rlpd"], pick["sac"]
    assert rlpd["interventions"] == [100]  # teleop=scripted spent its whole budget
    assert sac["interventions"] == [0]
    for curve in (rlpd, sac):
        assert curve["steps"] == [500, 1000]
        assert len(curve["eval_mean"]) == len(curve["train_mean"]) == 2
        run = curve["runs"][0]
        assert len(run["env_steps"]) >= 2 and run["episodes"][-1] == 10  # the final: 10 episodes
        assert curve["final_episodes"] == 10
    assert set(pick["steps_to_0.8_sac_over_rlpd"]) == {"ratio", "lower_bound"}
    assert all(v > 0 for v in payload["results"]["updates_per_s"].values())
    assert {t["name"].split(" ")[0] for t in payload["targets"]} == {"pick-cube"}


@pytest.mark.slow
def test_quick_pixel_and_classifier_runs_go_through_the_users_commands(run_quick) -> None:
    payload, out = run_quick("learning", "--seeds", "1", "--parts", "classifier")
    sources = payload["results"]["reward_sources"]
    rule, learned = sources["rule"], sources["classifier"]
    assert rule["interventions"] == learned["interventions"]  # one budget, however many resumes
    assert learned["runs"][0]["episodes"][-1] == 3  # the final checkpoint: final episodes
    assert out.count("review of") == 0  # the reviews print to the run's log, not here
    assert 0.0 <= sources["classifier_scores"]["accuracy"] <= 1.0
    assert len(payload["targets"]) == 2


def test_replot_draws_the_curves_of_earlier_runs_from_their_json(tmp_path) -> None:
    results = Path(__file__).parents[2] / "benchmarks" / "results"
    plot = tmp_path / "curves.png"
    command = [sys.executable, "-m", "benchmarks.learning", "--replot",
               f"{results}/learning_pick_cube.json"]
    env = {**os.environ, "MUJOCO_GL": "egl"}
    done = subprocess.run([*command, "--plot", str(plot)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode == 2 and "--replot needs --plot PATH" in refused.stderr
