"""Curves of the learning benchmarks from runs' evaluations and training episodes."""

from __future__ import annotations

import pytest

from benchmarks.common import loopback_only
from benchmarks.evaluation import EvalPoint
from benchmarks.training_runs import (
    RunResult,
    curves,
    evaluation_curve,
    steps_ratio,
    steps_to,
    training_curve,
)


def run(name: str, evaluated: dict[int, list[bool]], ends: list[int],
        success: list[bool]) -> RunResult:
    points = [EvalPoint(f"ckpt-{s:09d}", s, s, None, won, [10] * len(won))
              for s, won in evaluated.items()]
    return RunResult(name, points, ends, success, 0, 1.0, "log")


A = run("a", {1010: [False, False], 2040: [True, False], 3000: [True, True, True, False]},
        [500, 900, 1500, 2500, 3000], [False, True, False, True, True])
B = run("b", {1000: [False, False], 2000: [False, False], 3010: [True, True, False, False]},
        [1000, 2000, 3000], [False, False, True])


def test_evaluation_curve_reads_between_checkpoints_that_land_past_the_grid() -> None:
    assert evaluation_curve(A, [1010, 2040, 3000]) == [0.0, 0.5, 0.75]
    assert evaluation_curve(A, [1000, 1525]) == pytest.approx([0.0, 0.25])


def test_training_curve_counts_the_episodes_that_end_in_each_window() -> None:
    assert training_curve(A, [1000, 2000, 3000], 1000) == [0.5, 0.0, 1.0]
    assert training_curve(B, [1000], 500) == [0.0]


def test_steps_to_a_level_come_from_the_first_checkpoint_that_reaches_it() -> None:
    assert steps_to(A, 0.5) == 2040 and steps_to(A, 0.8) is None
    assert steps_to(B, 0.5) == 3010


def test_curves_summarise_the_seeds_and_weigh_every_final_episode() -> None:
    result = curves("x", [A, B], 3000, 1000)
    assert result["steps"] == [1000, 2000, 3000]
    assert result["final_per_seed"] == [0.75, 0.5] and result["final"] == 0.625
    assert result["final_episodes"] == 8
    assert result["final_stderr"] == pytest.approx((0.625 * 0.375 / 8) ** 0.5)
    assert result["steps_to_0.8"] == [None, None]
    assert [r["env_steps"] for r in result["runs"]] == [[1010, 2040, 3000], [1000, 2000, 3010]]


def test_a_ratio_with_a_seed_that_never_got_there_is_a_lower_bound() -> None:
    fast = {"steps_to_0.8": [1000, 3000]}
    assert steps_ratio({"steps_to_0.8": [4000, 4000]}, fast, 10000) == {
        "ratio": 2.0, "lower_bound": False}
    assert steps_ratio({"steps_to_0.8": [None, 2000]}, fast, 10000) == {
        "ratio": 3.0, "lower_bound": True}
    assert steps_ratio(fast, {"steps_to_0.8": [2000, None]}, 10000) == {  # fast never got there
        "ratio": None, "lower_bound": False}


def test_ray_commands_get_a_private_loopback_only_network_where_one_can_be_made() -> None:
    wrapped = loopback_only(["robot-rl", "train", "a b"])
    assert wrapped[-3:] == ["robot-rl", "train", "a b"]  # arguments passed through unquoted
    assert wrapped[:2] in (["unshare", "-n"], ["robot-rl", "train"])
