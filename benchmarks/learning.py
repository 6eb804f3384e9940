"""Learning benchmarks: SAC on reach; RLPD + demos + interventions vs plain SAC on pick-cube from
state; pick-cube from pixels as a user runs it (`task=pick_cube_pixels`), rewarded by the task
rule and by a learned classifier; learner throughput of the state, frozen-feature and end-to-end
pixel paths.

Every run is started through the CLI (`robot-rl record-demos`, `robot-rl train`), keeps a
checkpoint every K env steps, and is judged by `benchmarks.evaluation`: N held-out episodes per
checkpoint, deterministic policy, no interventions, the task rule's verdict. "Steps to X" comes
from that evaluation curve; the training episodes' success stays as a second line.
    python -m benchmarks.learning --quick                 # a smoke run of every part
    python -m benchmarks.learning --parts pick_cube --seeds 3 --workers 2 --work runs-bench \
        --json out.json --plot curve.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.common import report, target  # noqa: E402
from benchmarks.evaluation import Protocol  # noqa: E402
from benchmarks.learning_pixels import part_classifier, part_pick_cube_pixels  # noqa: E402
from benchmarks.learning_throughput import part_throughput  # noqa: E402
from benchmarks.training_runs import (  # noqa: E402
    RunSpec,
    curves,
    execute_all,
    print_curves,
    ratio_text,
    scripted_teleop,
    steps_ratio,
)

Results = tuple[dict[str, Any], list[dict[str, Any]]]


# -- parts ---------------------------------------------------------------------------------------
def part_reach_sac(args: argparse.Namespace) -> Results:
    budget, protocol = (1500, Protocol(500, 5, 10)) if args.quick else (
        args.steps or 20000, Protocol(1000, 20, 100))
    runs = execute_all([RunSpec(f"reach-sac-{s}", ("task=reach", "algo=sac", f"seed={s}"), budget)
                        for s in range(args.seeds)], args.work, protocol, args.workers)
    result = curves("sac reach (state, dense)", runs, budget, protocol.every)
    print_curves(f"SAC on reach, {args.seeds} seeds, {budget} env steps", [result])
    return {"reach_sac": result}, [
        target(f"reach SAC evaluation success within {budget} env steps", result["final"], 0.9,
               ">=")]


def part_pick_cube(args: argparse.Namespace) -> Results:
    """Pick-cube from state: RLPD + 20 scripted demos + a scripted intervener vs plain SAC, the
    same budget, the same evaluation."""
    budget, protocol = (1000, Protocol(500, 5, 10)) if args.quick else (
        args.steps or 30000, Protocol(2000, 20, 100))
    common = ("task=pick_cube", f"task.reward={args.task_reward}")
    specs = [RunSpec(f"pick-rlpd-{s}", (*common, "algo=rlpd", f"seed={s}"), budget,
                     teleop=scripted_teleop(budget), demos=20) for s in range(args.seeds)]
    specs += [RunSpec(f"pick-sac-{s}", (*common, "algo=sac", f"seed={s}"), budget)
              for s in range(args.seeds)]
    runs = execute_all(specs, args.work, protocol, args.workers)
    rlpd = curves(f"pick_cube rlpd+20 demos+interventions ({args.task_reward})",
                  runs[:args.seeds], budget, protocol.every)
    sac = curves(f"pick_cube sac ({args.task_reward})", runs[args.seeds:], budget,
                 protocol.every)
    print_curves(f"pick_cube from state, {args.task_reward} reward, {args.seeds} seeds, "
                 f"{budget} env steps", [rlpd, sac])
    ratio = steps_ratio(sac, rlpd, budget)
    print(ratio_text(ratio))
    return {"pick_cube_rlpd_vs_sac": {"rlpd": rlpd, "sac": sac, "budget": budget,
                                      "reward": args.task_reward,
                                      "steps_to_0.8_sac_over_rlpd": ratio}}, [
        target(f"pick-cube (state) RLPD+interventions evaluation success within {budget} steps",
               rlpd["final"], 0.8, ">="),
        target("pick-cube RLPD minus plain SAC evaluation success, same budget",
               rlpd["final"] - sac["final"], 0.3, ">="),
    ]


PARTS: dict[str, Callable[[argparse.Namespace], Results]] = {
    "throughput": part_throughput, "reach_sac": part_reach_sac, "pick_cube": part_pick_cube,
    "pick_cube_pixels": part_pick_cube_pixels, "classifier": part_classifier,
}


def plot(results: dict[str, Any], path: Path) -> None:
    """Evaluation curves (solid) with the training-episode curves (dashed, same colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [c for part in results.values() if isinstance(part, dict)
             for c in ([part] if "eval_mean" in part else
                       [v for v in part.values() if isinstance(v, dict) and "eval_mean" in v])]
    fig, ax = plt.subplots(figsize=(8, 6))
    for c in found:
        steps, mean, std = c["steps"], np.array(c["eval_mean"]), np.array(c["eval_std"])
        (line,) = ax.plot(steps, mean, label=f"{c['name']} (evaluation)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15, color=line.get_color())
        ax.plot(steps, c["train_mean"], linestyle="--", linewidth=0.8, color=line.get_color())
    ax.set(xlabel="env steps", ylim=(0, 1.02),
           ylabel="success: evaluation (solid), training episodes (dashed)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot -> {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=None,
                        help="env-step budget of the learning runs (default: the issue's)")
    parser.add_argument("--task-reward", default="dense", choices=["dense", "sparse"],
                        help="task.reward of the state pick_cube runs")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the runs here (default: a temporary folder); runs already "
                             "there are resumed and their evaluations reused")
    parser.add_argument("--replot", type=Path, nargs="+", default=None, metavar="JSON",
                        help="draw --plot from the JSON of earlier runs instead of running")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs at a time (each a trainer and its evaluator process)")
    args = parser.parse_args()
    unknown = sorted(set(args.parts.split(",")) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}: choose from {', '.join(PARTS)}")
    if args.replot is not None:
        if args.plot is None:
            parser.error("--replot needs --plot PATH")
        merged: dict[str, Any] = {}
        for path in args.replot:
            merged.update(json.loads(path.read_text())["results"])
        plot(merged, args.plot)
        return 0
    results: dict[str, Any] = {"seeds": args.seeds, "quick": args.quick}
    targets: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="robot-rl-bench-") as scratch:
        args.work = (args.work or Path(scratch)).resolve()
        for name in args.parts.split(","):
            start = time.perf_counter()
            part_results, part_targets = PARTS[name](args)
            results.update(part_results)
            results[f"{name}_wall_s"] = time.perf_counter() - start
            targets.extend(part_targets)
    if args.plot is not None:
        plot(results, args.plot)
    return report("learning", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
