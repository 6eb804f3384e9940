"""Pick-cube from pixels as a user runs it (`task=pick_cube_pixels algo=rlpd_frozen`: wrist and
side cameras at 128 px, a randomized scene, sparse reward, 20 demos, a scripted intervener within
a budget, one encoder per seed pretrained on the run's own demos), rewarded by the task rule or
by a success classifier on the wrist view that HIL-SERL's loop refits on the policy's false
successes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import print_table, target
from benchmarks.evaluation import Protocol
from benchmarks.training_runs import (
    RunResult,
    RunSpec,
    curves,
    execute_all,
    print_curves,
    scripted_teleop,
)

PIXELS = ("task=pick_cube_pixels", "algo=rlpd_frozen")
QUICK = ("robot.image_size=32", "task.max_steps=20", "algo.features.pretrain_steps=20",
         "learner.warmup_steps=100", "learner.batch_size=32")
"""The smoke run's shrunken set-up (CI checks that the path works, not what it learns)."""
CLASSIFIER_CAMERA = "wrist_cam"  # sees whether the cube sits inside the goal marker
REVIEW_EPISODES = 30
REFIT_STEPS = 500  # a review refits the current classifier, it does not start afresh


def budget_and_protocol(args: argparse.Namespace) -> tuple[int, Protocol]:
    return (400, Protocol(200, 2, 3)) if args.quick else (
        args.steps or 30000, Protocol(2000, 20, 100))


def pixel_spec(name: str, seed: int, budget: int, quick: bool, *extra: str,
               **around: Any) -> RunSpec:
    """A pick_cube_pixels RLPD run: 20 demos, takeovers by the scripted expert within a tenth
    of the budget (the user's `robot-rl` commands, nothing else)."""
    return RunSpec(name, (*PIXELS, f"seed={seed}", *(QUICK if quick else ()), *extra), budget,
                   teleop=scripted_teleop(budget), demos=20, **around)


def rule_runs(args: argparse.Namespace) -> list[RunResult]:
    budget, protocol = budget_and_protocol(args)
    return execute_all([pixel_spec(f"pixels-rule-{s}", s, budget, args.quick)
                        for s in range(args.seeds)], args.work, protocol, args.workers)


def part_pick_cube_pixels(args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    budget, protocol = budget_and_protocol(args)
    result = curves("pick_cube_pixels rlpd_frozen, task rule (sparse)", rule_runs(args), budget,
                    protocol.every)
    print_curves(f"pick_cube from pixels as a user runs it, {args.seeds} seeds, {budget} env "
                 "steps", [result])
    return {"pick_cube_pixels": result}, [
        target(f"pick_cube_pixels RLPD evaluation success within {budget} env steps, "
               f"{args.seeds} seeds", result["final"], 0.8, ">=")]


def reward_data(seed: int, quick: bool) -> tuple[tuple[str, ...], ...]:
    """The classifier's first labelled frames, HIL-SERL style: successes, near misses and
    clumsy failures recorded by the scripted expert (other scenes than the run's), then a fit."""
    data = f"run.dir={{work}}/reward-data-{seed}"
    scale = 10 if quick else 1
    shrink = ("robot.image_size=32", "task.max_steps=20") if quick else ()
    return (("record-demos", "task=pick_cube_pixels", f"seed={100 + seed}", *shrink,
             f"episodes={60 // scale}", data),
            ("record-demos", f"episodes={30 // scale}", "miss=0.06", data),
            ("record-demos", f"episodes={10 // scale}", "skill=0.3", data),
            ("train-reward", f"{{work}}/reward-data-{seed}", "--camera", CLASSIFIER_CAMERA,
             *(("--steps", "20") if quick else ())))


def classifier_spec(seed: int, budget: int, quick: bool) -> RunSpec:
    """pick_cube_pixels RLPD rewarded by the classifier, which a review of the policy's false
    successes refits at a third and at two thirds of the budget."""
    data = f"{{work}}/reward-data-{seed}"
    review = ("train-reward", data, "--camera", CLASSIFIER_CAMERA, "--review", "{run}",
              "--review-episodes", str(2 if quick else REVIEW_EPISODES),
              "--steps", "20" if quick else str(REFIT_STEPS))
    return pixel_spec(f"pixels-classifier-{seed}", seed, budget, quick, "reward=classifier",
                      f"reward.params.path={data}/reward.npz", before=reward_data(seed, quick),
                      pauses=((budget // 3, review), (2 * budget // 3, review)))


def classifier_accuracy(work: Path, seeds: int) -> dict[str, float | None]:
    """The final classifiers' scores on the episodes `robot-rl train-reward` held out of their
    fit (its default split), averaged over seeds."""
    from policies.reward_classifier import SuccessClassifier, scores
    from robot_rl.commands.train_reward import held_out, labelled_frames
    from robot_rl.runtime.run_dir import RunDir

    found = []
    for s in range(seeds):
        data = RunDir(work / f"reward-data-{s}")
        frames, labels, episodes = labelled_frames(data, [CLASSIFIER_CAMERA], 0)
        held = held_out(episodes, 0.2, 0)
        model = SuccessClassifier.load(data.root / "reward.npz")
        found.append(scores(model, {c: f[held] for c, f in frames.items()}, labels[held]))
    means = {k: np.nanmean([f[k] for f in found]) for k in found[0]}  # nan: no such frames
    return {k: None if np.isnan(v) else float(v) for k, v in means.items()}


def part_classifier(args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    budget, protocol = budget_and_protocol(args)
    rule = curves("pick_cube_pixels rlpd_frozen, task rule (sparse)", rule_runs(args), budget,
                  protocol.every)
    learned = curves("pick_cube_pixels rlpd_frozen, classifier reward (wrist)", execute_all(
        [classifier_spec(s, budget, args.quick) for s in range(args.seeds)], args.work,
        protocol, args.workers), budget, protocol.every)
    print_curves(f"pick_cube_pixels by reward source, {args.seeds} seeds, {budget} env steps, "
                 "evaluated by the task rule", [rule, learned])
    ratio = learned["final"] / max(rule["final"], 1e-9)
    # delta method: the ratio's standard error from the two binomial errors
    stderr = ratio * float(np.hypot(learned["final_stderr"] / max(learned["final"], 1e-9),
                                    rule["final_stderr"] / max(rule["final"], 1e-9)))
    accuracy = classifier_accuracy(args.work, args.seeds)
    print_table(list(accuracy), [list(accuracy.values())],
                title="final reward classifiers on the held-out episodes of their data")
    print(f"classifier / rule evaluation success: {ratio:.2f} ± {stderr:.2f}")
    return {"reward_sources": {"rule": rule, "classifier": learned, "budget": budget,
                               "ratio_classifier_over_rule": ratio, "ratio_stderr": stderr,
                               "classifier_scores": accuracy}}, [
        target("RLPD with classifier reward / with rule reward, evaluation success", ratio, 0.8,
               ">="),
        target("that ratio minus its standard error (margin beyond sampling error)",
               ratio - stderr, 0.8, ">="),
    ]
