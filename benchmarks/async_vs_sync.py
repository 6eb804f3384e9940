"""The asynchronous session against its synchronous twin, on the RLPD pick-cube set-up from state
with sim arms paced at real time (10 Hz): generation period (wall-clock seconds per episode of one
robot), training period (wall-clock seconds per learner update once training has begun) and
wall-clock to 80 % evaluation success (`benchmarks.evaluation`: held-out scenes, deterministic
policy, nobody helping), both modes run the same way a user runs them (`robot-rl train
runtime.mode=async|sync`), same config, same seeds: sync makes `learner.updates_per_step` updates
per step after each round, the asynchronous learner never waits for the robots.
    python -m benchmarks.async_vs_sync --quick
    python -m benchmarks.async_vs_sync --json benchmarks/results/async_vs_sync.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.common import print_table, report, target  # noqa: E402
from benchmarks.evaluation import Protocol  # noqa: E402
from benchmarks.training_runs import (  # noqa: E402
    LEVEL,
    RunResult,
    RunSpec,
    execute,
    scripted_teleop,
)

RLINF_TRAINING_SPEEDUP = 4.61  # RLinf-USER Table IV, CNN+SAC: 0.643 -> 0.135 s/update
RLINF_GENERATION_SPEEDUP = 1.55  # 20.29 -> 13.11 s/episode


def periods(run: Path, robots: int) -> dict[str, float | None]:
    """From the run's metrics log (its clock starts before the parts do): seconds per episode of
    one robot from the first episode on, and seconds per learner update from the first update
    on, so the start-up of the parts counts in neither."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]

    def until_last(*keys: str) -> dict[str, Any]:
        """The first row with the run's final counts: a resumed finished run (the benchmark run
        again to collect its results) logs rows later without doing anything."""
        return next(r for r in rows if all(r[k] == last[k] for k in keys))

    def per(key: str, scale: float) -> float | None:
        first, end = next((r for r in rows if r[key] > 0), last), until_last(key)
        done = (end[key] - first[key]) / scale
        return (end["t"] - first["t"]) / done if done > 0 else None

    return {"wall_s": until_last("env_steps", "updates")["t"], "episodes": last["episodes"],
            "updates": last["updates"],
            "generation_s_per_episode": per("episodes", robots),
            "training_s_per_update": per("updates", 1.0)}


def wall_to(result: RunResult, level: float) -> float | None:
    """The session's wall-clock seconds at the first checkpoint evaluated at `level` or above."""
    return next((p.elapsed_s for p in result.evaluation if p.rate >= level), None)


def run_mode(mode: str, seed: int, args: argparse.Namespace, protocol: Protocol) -> dict[str, Any]:
    robots = "{" + ", ".join(f"arm{i}: {{}}" for i in range(args.robots)) + "}"
    robots = robots.replace("{", "{{").replace("}", "}}")  # overrides are format templates
    quick = ("learner.warmup_steps=100", "learner.batch_size=64") if args.quick else ()
    spec = RunSpec(f"{mode}-{seed}", (
        "task=pick_cube", "algo=rlpd", f"seed={seed}", f"runtime.mode={mode}",
        "runtime.realtime=true", f"robot.control_hz={args.hz}", f"robots={robots}", *quick),
        args.budget, teleop=scripted_teleop(args.budget), demos=args.demos, evaluate_after=True)
    result = execute(spec, args.work, protocol)
    root = args.work / spec.name
    return {"mode": mode, "seed": seed, **periods(root, args.robots),
            f"wall_s_to_{LEVEL}": wall_to(result, LEVEL),
            "curve": {"elapsed_s": [p.elapsed_s for p in result.evaluation],
                      "env_steps": [p.env_steps for p in result.evaluation],
                      "success": [p.rate for p in result.evaluation]},
            "final_success": result.final.rate}


def mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows]
    return None if any(v is None for v in values) else float(np.mean(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--robots", type=int, default=2, help="sim arms per session")
    parser.add_argument("--budget", type=int, default=None, help="env steps per run")
    parser.add_argument("--work", type=Path, default=Path("runs-bench/async_vs_sync"),
                        help="where the runs live (an interrupted benchmark resumes them)")
    args = parser.parse_args()
    args.hz = 50.0 if args.quick else 10.0
    args.budget = args.budget or (300 if args.quick else 20000)
    args.demos = 2 if args.quick else 20
    if args.quick:
        args.robots = 1
    protocol = Protocol(150, 2, 2) if args.quick else Protocol(1000, 20, 50)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = {mode: [run_mode(mode, s, args, protocol) for s in range(args.seeds)]
            for mode in ("sync", "async")}
    summary = {mode: {key: mean(r, key) for key in (
        "generation_s_per_episode", "training_s_per_update", f"wall_s_to_{LEVEL}",
        "final_success", "updates", "wall_s")} for mode, r in rows.items()}
    s, a = summary["sync"], summary["async"]

    def ratio(key: str) -> float | None:
        return None if s[key] is None or a[key] is None else s[key] / a[key]

    training, generation = ratio("training_s_per_update"), ratio("generation_s_per_episode")
    to_level = (None if s[f"wall_s_to_{LEVEL}"] is None or a[f"wall_s_to_{LEVEL}"] is None
                else a[f"wall_s_to_{LEVEL}"] / s[f"wall_s_to_{LEVEL}"])
    print_table(["mode", "s/episode (one robot)", "s/update", f"wall s to {LEVEL}",
                 "final eval success", "updates", "wall s"],
                [[m, v["generation_s_per_episode"], v["training_s_per_update"],
                  v[f"wall_s_to_{LEVEL}"], v["final_success"], v["updates"], v["wall_s"]]
                 for m, v in summary.items()],
                title=f"async vs sync: RLPD pick-cube from state, {args.robots} arm(s) at "
                      f"{args.hz:g} Hz, {args.budget} env steps, {args.seeds} seed(s)")
    results = {"setup": {"robots": args.robots, "control_hz": args.hz, "budget": args.budget,
                         "seeds": args.seeds, "demos": args.demos,
                         "evaluation": vars(protocol)},
               "summary": summary, "runs": rows,
               "training_speedup": training, "generation_speedup": generation,
               f"async_over_sync_wall_to_{LEVEL}": to_level}
    targets = [
        target("training period speed-up, sync s/update over async", training,
               RLINF_TRAINING_SPEEDUP, ">="),
        target("generation period speed-up, sync s/episode over async", generation,
               RLINF_GENERATION_SPEEDUP, ">="),
        target(f"async wall-clock to {LEVEL} success over sync's", to_level, 1.0, "<"),
    ]
    return report("async_vs_sync", results, targets, args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
