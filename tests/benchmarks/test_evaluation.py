"""The evaluation protocol on a real run: `robot-rl train` keeps checkpoints, each is judged on
the same held-out scenes by the deterministic policy; results persist and are not redone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import benchmarks.evaluation as evaluation
from benchmarks.evaluation import EVAL_SEED, EvalPoint, Protocol, evaluate_run, load_points
from buffer import ZarrStorage
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.run_dir import RunDir


def test_a_point_reports_its_rate_and_binomial_error() -> None:
    point = EvalPoint("ckpt-000000010", 10, 5, None, [True, False, True, True], [3, 30, 4, 7])
    assert point.rate == 0.75
    assert point.stderr == pytest.approx(np.sqrt(0.75 * 0.25 / 4))
    assert EvalPoint("c", 0, 0, None).rate == 0.0


@pytest.mark.slow
def test_every_checkpoint_is_judged_on_the_same_held_out_scenes(tmp_path: Path,
                                                                monkeypatch) -> None:
    root = tmp_path / "run"
    protocol = Protocol(every=30, episodes=3, final_episodes=5)
    train = [str(Path(sys.executable).with_name("robot-rl")), "train", "task=reach",
             "algo=sac", "runtime.mode=sync", "run.env_steps=100", "learner.warmup_steps=50",
             "learner.batch_size=16", "algo.params.hidden=[16,16]", "seed=3",
             *protocol.train_overrides(), f"run.dir={root}"]
    subprocess.run(train, check=True, capture_output=True, timeout=300)
    run = RunDir(root)
    points = evaluate_run(run, protocol)
    kept = sorted(p.name for p in run.checkpoints.glob("ckpt-*"))
    assert [p.checkpoint for p in points] == kept and len(kept) >= 3  # one per checkpoint
    assert [len(p.success) for p in points] == [3] * (len(kept) - 1) + [5]  # more at the end
    assert all(len(p.steps) == len(p.success) for p in points)
    assert load_points(run) == {p.checkpoint: p for p in points}  # kept in the run

    # held out: evaluation episode 0 is seed EVAL_SEED's scene, not the training run's first
    arm, _ = build_robot(run.load_config())
    arm.connect()
    arm.seed(EVAL_SEED)
    held_out = arm.reset()["target_pos"]
    arm.disconnect()
    first_train = ZarrStorage.open_existing(run.buffer).read_rows(np.array([0]))
    assert not np.allclose(first_train["obs/target_pos"][0], held_out)

    # deterministic: the same checkpoint judged afresh acts exactly as before
    again = evaluation.RunEvaluator(run).evaluate(run.checkpoints / kept[0], 3)
    assert (again.success, again.steps) == (points[0].success, points[0].steps)

    def refuse(_run: RunDir) -> None:
        raise AssertionError("evaluated a checkpoint twice")

    monkeypatch.setattr(evaluation, "RunEvaluator", refuse)
    assert evaluate_run(run, protocol) == points  # nothing new: nothing run again
