"""The evaluation protocol of every learning benchmark, written once: a run's saved checkpoints,
each judged on held-out episodes by its deterministic policy with nobody intervening, counted by
the task rule (whatever reward source trained it).

Training keeps a checkpoint every K env steps (`Protocol.train_overrides`); this module loads each
one afterwards, or while the run goes on in another process, so it is independent of how the
session runs. Evaluation episode i resets the scene from seed `EVAL_SEED + i`, far from any
training seed (small integers), and is the same episode for every checkpoint of every run.
    python -m benchmarks.evaluation runs/pick --episodes 20 --final-episodes 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.common import print_table  # noqa: E402
from policies.rewards import TaskRuleReward  # noqa: E402
from robot_rl.core import ConfigError, Observation  # noqa: E402
from robot_rl.runtime.actor import ActionSource, Actor, ActorConfig, steps  # noqa: E402
from robot_rl.runtime.run_dir import RunDir  # noqa: E402
from robot_rl.runtime.run_policy import RunPolicy  # noqa: E402
from sim import MujocoArm  # noqa: E402

EVAL_SEED = 1_000_000
"""Evaluation episode i draws its scene from seed EVAL_SEED + i: never a training seed."""
RESULTS = "evaluation.jsonl"  # one line per evaluated checkpoint, inside the run directory
POLL_S = 5.0  # how often a follower looks for a new checkpoint


@dataclass(frozen=True)
class Protocol:
    """Every `every` env steps, `episodes` evaluation episodes; `final_episodes` at the end."""

    every: int
    episodes: int
    final_episodes: int

    def train_overrides(self) -> list[str]:
        """What `robot-rl train` needs to keep a checkpoint every `every` steps, all of them."""
        return [f"run.checkpoint_every={self.every}", "run.keep_checkpoints=100000"]


@dataclass
class EvalPoint:
    """One checkpoint's evaluation: which episodes succeeded, and in how many steps."""

    checkpoint: str
    env_steps: int
    updates: int
    elapsed_s: float | None
    """The session's wall-clock seconds at this checkpoint, where the checkpoint records them."""
    success: list[bool] = field(default_factory=list)
    """One verdict per evaluation episode, in seed order (episode i: EVAL_SEED + i)."""
    steps: list[int] = field(default_factory=list)
    """Steps each episode ran (to success, or the task's max_steps)."""

    @property
    def rate(self) -> float:
        return float(np.mean(self.success)) if self.success else 0.0

    @property
    def stderr(self) -> float:
        """The binomial standard error of `rate` over these episodes."""
        n = len(self.success)
        return float(np.sqrt(self.rate * (1 - self.rate) / n)) if n else 0.0


class DeterministicPolicy(ActionSource):
    """A run's policy acting on its mean action, always: no exploration, no random warm-up."""

    def __init__(self, learned: RunPolicy) -> None:
        self.learned = learned

    async def act(self, obs: Observation) -> np.ndarray | None:
        return self.learned.policy.act(self.learned.observe(obs), deterministic=True)


class RunEvaluator:
    """A run's policy at any of its checkpoints, acting alone on held-out scenes."""

    def __init__(self, run: RunDir) -> None:
        import torch

        torch.set_num_threads(1)
        self.learned = RunPolicy(run)
        if not isinstance(self.learned.arm, MujocoArm):
            raise ConfigError("evaluation draws held-out scenes from seeds: it needs a sim arm")
        self.arm: MujocoArm = self.learned.arm
        self.actor = Actor(self.learned.robot, TaskRuleReward(), ActorConfig(
            max_steps=int(self.learned.cfg.task.max_steps), task_reward="sparse"),
            outcomes=self.arm)

    def evaluate(self, checkpoint: Path, episodes: int, done: EvalPoint | None = None
                 ) -> EvalPoint:
        """The policy of `checkpoint` on evaluation episodes 0..episodes-1 (those `done` holds
        already are kept, not run again)."""
        counters = self.learned.load(checkpoint)
        point = done or EvalPoint(checkpoint.name, int(counters["env_steps"]),
                                  int(counters["updates"]), counters.get("elapsed_s"))
        source = DeterministicPolicy(self.learned)
        self.learned.robot.connect()
        try:
            for i in range(len(point.success), episodes):
                self.arm.seed(EVAL_SEED + i)
                ran = sum(1 for _ in steps(self.actor.episode(source, i)))
                point.success.append(self.actor.task_success)
                point.steps.append(ran)
        finally:
            self.learned.robot.disconnect()
        return point


def checkpoints(run: RunDir) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    return sorted(p for p in run.checkpoints.glob("ckpt-*") if (p / "state.json").exists())


def load_points(run: RunDir) -> dict[str, EvalPoint]:
    """Evaluations already made for this run, by checkpoint name."""
    path = run.root / RESULTS
    if not path.exists():
        return {}
    points = [EvalPoint(**json.loads(line)) for line in path.read_text().splitlines() if line]
    return {p.checkpoint: p for p in points}


def evaluate_run(run: RunDir, protocol: Protocol,
                 training: Callable[[], bool] = lambda: False) -> list[EvalPoint]:
    """Evaluate every checkpoint of `run` with `protocol.episodes` episodes, following the run
    while `training()` is true, then its last checkpoint with `protocol.final_episodes`.

    Results go to `<run>/evaluation.jsonl` as they come, so a second call evaluates only what is
    new and the curve survives an interrupted benchmark.
    """
    evaluator: RunEvaluator | None = None
    points = load_points(run)
    while True:
        still_training = training()  # read before listing: no checkpoint is missed at the end
        found = checkpoints(run)
        for ckpt in found:
            final = not still_training and ckpt == found[-1]
            wanted = protocol.final_episodes if final else protocol.episodes
            have = points.get(ckpt.name)
            if have is not None and len(have.success) >= wanted:
                continue
            evaluator = evaluator or RunEvaluator(run)
            points[ckpt.name] = evaluator.evaluate(ckpt, wanted, have)
            tmp = run.root / f".{RESULTS}.tmp"  # replaced whole: a kill never leaves half a file
            tmp.write_text("".join(json.dumps(asdict(p)) + "\n" for p in points.values()))
            tmp.replace(run.root / RESULTS)
        if not still_training:
            return sorted(points.values(), key=lambda p: p.env_steps)
        time.sleep(POLL_S)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie child counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run kept by `robot-rl train`")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per checkpoint")
    parser.add_argument("--final-episodes", type=int, default=100,
                        help="episodes for the last checkpoint (the headline figure)")
    parser.add_argument("--follow-pid", type=int, default=None,
                        help="evaluate checkpoints as they appear while this process runs")
    args = parser.parse_args()
    if args.episodes < 1 or args.final_episodes < args.episodes:
        parser.error("need 1 <= --episodes <= --final-episodes")
    follow = args.follow_pid
    run = RunDir(args.run_dir) if follow else RunDir(args.run_dir).require()  # may start later
    protocol = Protocol(0, args.episodes, args.final_episodes)
    points = evaluate_run(run, protocol, (lambda: pid_alive(follow)) if follow else lambda: False)
    print_table(["checkpoint", "env steps", "updates", "episodes", "success", "± s.e."],
                [[p.checkpoint, p.env_steps, p.updates, len(p.success), p.rate, p.stderr]
                 for p in points], title=f"evaluation of {run.root} (deterministic, held out, "
                                         "no interventions, task rule)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
