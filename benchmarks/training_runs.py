"""Training runs started as a user starts them: `robot-rl record-demos` and `robot-rl train` as
subprocesses (whatever runtime is behind the CLI), each followed by a `benchmarks.evaluation`
process that judges its checkpoints as they appear.

Runs live in a work directory; one that is already there is resumed (a finished one is only
evaluated again where its evaluation is incomplete), so an interrupted benchmark goes on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import die_with_parent, loopback_only, print_table
from benchmarks.evaluation import EvalPoint, Protocol, load_points
from buffer import ZarrStorage
from robot_rl.runtime.run_dir import RunDir


@dataclass(frozen=True)
class RunSpec:
    """One training run: its folder's name, its config, its budget, and what happens around it.

    Commands are `robot-rl` argument lists; in them and in the overrides `{run}` stands for the
    run's folder and `{work}` for the benchmark's work folder.
    """

    name: str
    overrides: tuple[str, ...]
    """The run's config (task, algo, seed, ...), as every command of the run gets it."""
    budget: int
    """`run.env_steps` of the run."""
    teleop: tuple[str, ...] = ()
    """`teleop=...` overrides of training alone (record-demos would take that teleop as the
    demonstrator)."""
    demos: int = 0
    """Scripted-expert demos recorded into the run's demo side (`into=demos`) before training."""
    before: tuple[tuple[str, ...], ...] = ()
    """Commands run once, before the run is first trained."""
    pauses: tuple[tuple[int, tuple[str, ...]], ...] = ()
    """(env steps, command): training stops at those steps for the command, then goes on."""
    evaluate_after: bool = False
    """Evaluate once training has ended instead of alongside it (a benchmark timing the
    session: nothing else competes for the CPU while it trains)."""


@dataclass
class RunResult:
    """What a run gives the benchmark: its evaluation curve and its training episodes."""

    name: str
    evaluation: list[EvalPoint]
    episode_ends: list[int]
    """The env step at which each training episode ended."""
    episode_success: list[bool]
    """The run's own verdict on each training episode, counted only where nobody took over."""
    interventions: int
    wall_s: float
    """Seconds the commands of this run took in this benchmark (0 for a finished run reused)."""
    log: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> EvalPoint:
        return self.evaluation[-1]


def robot_rl(*args: str) -> list[str]:
    """The `robot-rl` command of this environment with `args`."""
    return [str(Path(sys.executable).with_name("robot-rl")), *args]


def call(command: Sequence[str], log: Path) -> None:
    """Run `command` to its end, its output appended to `log`; a failure names the log."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                              preexec_fn=die_with_parent)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited {done.returncode}; see {log}")


def train_and_evaluate(spec: RunSpec, overrides: Sequence[str], root: Path, budget: int,
                       protocol: Protocol, log: Path) -> None:
    """`robot-rl train` up to `budget` env steps (in a loopback-only network namespace: it may
    start Ray) with a `benchmarks.evaluation` process following its checkpoints; the last one
    gets `protocol.final_episodes` only when `budget` is the run's own."""
    train = robot_rl("train", *overrides, f"run.env_steps={budget}",
                     *takeovers_left(spec.teleop, root),
                     *protocol.train_overrides(), f"run.dir={root}")
    final = protocol.final_episodes if budget == spec.budget else protocol.episodes
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(train)}\n")
        out.flush()
        trainer = subprocess.Popen(loopback_only(train), stdout=out, stderr=subprocess.STDOUT,
                                   preexec_fn=die_with_parent)
        if spec.evaluate_after:
            trainer.wait()
        follower = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.evaluation", str(root), "--episodes",
             str(protocol.episodes), "--final-episodes", str(final),
             "--follow-pid", str(trainer.pid)], stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent)
        trained, evaluated = trainer.wait(), follower.wait()
    if trained != 0 or evaluated != 0:
        raise RuntimeError(f"run {root.name}: train exited {trained}, evaluation {evaluated}; "
                           f"see {log}")


def takeovers_left(teleop: Sequence[str], root: Path) -> list[str]:
    """`teleop` with its `teleop.params.budget` cut by the steps already taken over in the run:
    a resumed session starts its scripted intervener afresh, and the budget is the run's."""
    if not (RunDir(root).buffer / "zarr.json").exists():
        return list(teleop)
    used = int(ZarrStorage.open_existing(RunDir(root).buffer).read_episodes()["interventions"]
               .sum())
    key = "teleop.params.budget="
    return [f"{key}{max(0, int(t.removeprefix(key)) - used)}" if t.startswith(key) else t
            for t in teleop]


def trained_steps(root: Path) -> int:
    """Env steps of the run's newest checkpoint (0 before the first)."""
    latest = root / "checkpoints" / "latest.json"
    return int(json.loads(latest.read_text())["step"]) if latest.exists() else 0


def execute(spec: RunSpec, work: Path, protocol: Protocol) -> RunResult:
    """Run the commands before training, record the demos, train (stopping for each pause's
    command), evaluate: whatever of it is not done yet."""
    root, log = work / spec.name, work / f"{spec.name}.log"
    start = time.perf_counter()

    def filled(args: Sequence[str]) -> list[str]:
        return [a.format(run=root, work=work) for a in args]

    overrides = filled(spec.overrides)
    if not RunDir(root).exists:
        for args in spec.before:
            call(robot_rl(*filled(args)), log)
        if spec.demos:
            call(robot_rl("record-demos", *overrides, f"run.env_steps={spec.budget}",
                          f"episodes={spec.demos}", "into=demos", f"run.dir={root}"), log)
    for steps, args in sorted(spec.pauses):
        if trained_steps(root) < steps:
            train_and_evaluate(spec, overrides, root, steps, protocol, log)
            call(robot_rl(*filled(args)), log)
    train_and_evaluate(spec, overrides, root, spec.budget, protocol, log)
    episodes = ZarrStorage.open_existing(RunDir(root).buffer).read_episodes()
    helped = episodes["interventions"] > 0
    return RunResult(
        spec.name, sorted(load_points(RunDir(root)).values(), key=lambda p: p.env_steps),
        (episodes["start"] + episodes["length"]).tolist(),
        (episodes["success"].astype(bool) & ~helped).tolist(),
        int(episodes["interventions"].sum()), time.perf_counter() - start, str(log))


def execute_all(specs: Sequence[RunSpec], work: Path, protocol: Protocol,
                workers: int) -> list[RunResult]:
    """Every run, `workers` at a time (each one a trainer and its evaluator), in order."""
    work.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(lambda s: execute(s, work, protocol), specs))


LEVEL = 0.8  # "steps to 80 % success"


def scripted_teleop(budget: int) -> tuple[str, ...]:
    """The task's scripted expert taking over now and then (`teleop=scripted`), a tenth of the
    run's steps in all, as a person's takeovers fade out once the budget is spent."""
    return ("teleop=scripted", "teleop.params.start_prob=0.03", "teleop.params.window=10",
            f"teleop.params.budget={budget // 10}")


# -- curves --------------------------------------------------------------------------------------
def grid(budget: int, every: int) -> list[int]:
    return list(range(every, budget + 1, every))


def evaluation_curve(run: RunResult, steps: list[int]) -> list[float]:
    """The run's evaluated success at each of `steps`, linear between its checkpoints (which
    land up to an episode past each multiple of the checkpoint interval)."""
    at, rate = [p.env_steps for p in run.evaluation], [p.rate for p in run.evaluation]
    return np.interp(steps, at, rate).tolist()


def training_curve(run: RunResult, steps: list[int], window: int) -> list[float]:
    """Share of the training episodes ending in each window of `window` steps that succeeded
    with no takeover (the run's own reward source's verdict)."""
    ends, success = np.asarray(run.episode_ends), np.asarray(run.episode_success, bool)
    out = []
    for hi in steps:
        inside = (ends > hi - window) & (ends <= hi)
        out.append(float(success[inside].mean()) if inside.any() else 0.0)
    return out


def steps_to(run: RunResult, level: float) -> int | None:
    """Env steps of the first checkpoint whose evaluation reaches `level` (None: never)."""
    return next((p.env_steps for p in run.evaluation if p.rate >= level), None)


def curves(name: str, runs: Sequence[RunResult], budget: int, every: int) -> dict[str, Any]:
    """The seeds' evaluation curves (mean, std), the training-episode curves as a second line,
    the final evaluation and the steps to 80 % per seed."""
    steps = grid(budget, every)
    evals = np.array([evaluation_curve(r, steps) for r in runs])
    trains = np.array([training_curve(r, steps, every) for r in runs])
    finals = [r.final for r in runs]
    episodes = sum(len(f.success) for f in finals)
    final = float(np.mean([f.rate for f in finals]))
    return {
        "name": name, "steps": steps,
        "eval_mean": evals.mean(0).tolist(), "eval_std": evals.std(0).tolist(),
        "train_mean": trains.mean(0).tolist(), "train_std": trains.std(0).tolist(),
        "final": final, "final_per_seed": [f.rate for f in finals],
        "final_env_steps": [f.env_steps for f in finals], "final_episodes": episodes,
        "final_stderr": float(np.sqrt(final * (1 - final) / episodes)),
        f"steps_to_{LEVEL}": [steps_to(r, LEVEL) for r in runs],
        "wall_s": [r.wall_s for r in runs], "interventions": [r.interventions for r in runs],
        "runs": [{"name": r.name, "env_steps": [p.env_steps for p in r.evaluation],
                  "success": [p.rate for p in r.evaluation],
                  "episodes": [len(p.success) for p in r.evaluation],
                  "elapsed_s": [p.elapsed_s for p in r.evaluation], **r.extra} for r in runs],
    }


def print_curves(title: str, results: Sequence[dict[str, Any]]) -> None:
    rows = [[r["name"], f"{r['final']:.2f} ± {r['final_stderr']:.2f}",
             " ".join(f"{v:.2f}" for v in r["final_per_seed"]), r[f"steps_to_{LEVEL}"],
             f"{np.mean(r['wall_s']):.0f}", r["interventions"]] for r in results]
    print_table(["run", "final eval success ± s.e.", "per seed", f"steps to {LEVEL}",
                 "wall s", "interv."], rows, title=title)


def steps_ratio(slow: dict[str, Any], fast: dict[str, Any], budget: int) -> dict[str, Any]:
    """Mean steps to 80 % of `slow` over `fast`; a seed of `slow` that never got there counts as
    the whole budget, which makes the ratio a lower bound. Undetermined (None) when a seed of
    `fast` never got there: its mean would be a guess."""
    if None in fast[f"steps_to_{LEVEL}"]:
        return {"ratio": None, "lower_bound": False}
    means = [np.mean([budget if s is None else s for s in r[f"steps_to_{LEVEL}"]])
             for r in (slow, fast)]
    return {"ratio": float(means[0] / means[1]),
            "lower_bound": None in slow[f"steps_to_{LEVEL}"]}


def ratio_text(ratio: dict[str, Any]) -> str:
    """The SAC/RLPD steps ratio as the table and the README say it."""
    if ratio["ratio"] is None:
        return (f"the ratio of SAC's steps to {LEVEL} over RLPD's is undetermined (RLPD did not "
                "reach it on every seed)")
    return f"SAC needs {'≥ ' if ratio['lower_bound'] else ''}{ratio['ratio']:.2f}× RLPD's steps"
