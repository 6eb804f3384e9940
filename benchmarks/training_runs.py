"""Training runs started as a user starts them: `robot-rl record-demos` and `robot-rl train` as
subprocesses (whatever runtime is behind the CLI), each followed by a `benchmarks.evaluation`
process that judges its checkpoints as they appear.

Runs live in a work directory; one that is already there is resumed (a finished one is only
evaluated again where its evaluation is incomplete), so an interrupted benchmark goes on.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import loopback_only
from benchmarks.evaluation import EvalPoint, Protocol, load_points
from buffer import ZarrStorage
from robot_rl.runtime.run_dir import RunDir


@dataclass(frozen=True)
class RunSpec:
    """One training run: its folder's name, the `robot-rl train` overrides, demos recorded first."""

    name: str
    overrides: tuple[str, ...]
    """The run's config (task, algo, seed, budget, ...), as every command of the run gets it."""
    teleop: tuple[str, ...] = ()
    """`teleop=...` overrides of training alone (record-demos would take that teleop as the
    demonstrator)."""
    demos: int = 0
    """Scripted-expert demos recorded into the run's demo side (`into=demos`) before training."""
    before_training: tuple[tuple[str, ...], ...] = ()
    """Further `robot-rl` commands run before training, `{run}` standing for the run folder."""


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
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited {done.returncode}; see {log}")


def train_and_evaluate(spec: RunSpec, root: Path, protocol: Protocol, log: Path) -> None:
    """`robot-rl train` (in a loopback-only network namespace: it may start Ray) with a
    `benchmarks.evaluation` process following its checkpoints."""
    train = robot_rl("train", *spec.overrides, *spec.teleop, *protocol.train_overrides(),
                     f"run.dir={root}")
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(train)}\n")
        out.flush()
        trainer = subprocess.Popen(loopback_only(train), stdout=out, stderr=subprocess.STDOUT)
        follower = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.evaluation", str(root), "--episodes",
             str(protocol.episodes), "--final-episodes", str(protocol.final_episodes),
             "--follow-pid", str(trainer.pid)], stdout=out, stderr=subprocess.STDOUT)
        trained, evaluated = trainer.wait(), follower.wait()
    if trained != 0 or evaluated != 0:
        raise RuntimeError(f"run {root.name}: train exited {trained}, evaluation {evaluated}; "
                           f"see {log}")


def execute(spec: RunSpec, work: Path, protocol: Protocol) -> RunResult:
    """Record the demos, run the commands before training, train, evaluate (what is not done)."""
    root, log = work / spec.name, work / f"{spec.name}.log"
    start = time.perf_counter()
    overrides = [*spec.overrides, f"run.dir={root}"]
    if spec.demos and not RunDir(root).demos.exists():
        call(robot_rl("record-demos", *overrides, f"episodes={spec.demos}", "into=demos"), log)
    for command in spec.before_training:
        call(robot_rl(*(arg.format(run=root) for arg in command)), log)
    train_and_evaluate(spec, root, protocol, log)
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
