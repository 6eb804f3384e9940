"""`robot-rl train-reward` on a real run directory: Zarr buffer, MuJoCo re-rendering."""

from __future__ import annotations

import numpy as np
import pytest

from buffer import ReplayBuffer, ZarrStorage
from policies.reward_classifier import SuccessClassifier
from robot_rl.cli import main
from robot_rl.config import compose_session
from robot_rl.core import Episode, Transition
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.run_dir import RunDir


def record_reach_run(root, episodes: int) -> RunDir:
    """Even episodes steer to the target (successes), odd ones wander (failures)."""
    cfg = compose_session(["task=reach", "task.max_steps=12", f"run.dir={root}"])
    run = RunDir(root)
    run.root.mkdir(parents=True)
    run.save_config(cfg)
    arm, robot = build_robot(cfg)
    robot.connect()
    buffer = ReplayBuffer(run.buffer, robot.observation_spec, robot.action_spec)
    rng = np.random.default_rng(0)
    try:
        for e in range(episodes):
            obs, ep = robot.reset(), Episode(e, robot.robot_id, "reach")
            for step in range(cfg.task.max_steps):
                if e % 2 == 0:
                    delta = (obs["target_pos"] - obs["ee_pos"]) / cfg.robot.translation_scale
                    action = np.append(np.clip(delta, -1, 1), [0.0, 0.0]).astype(np.float32)
                else:
                    action = rng.uniform(-1, 1, 5).astype(np.float32)
                applied = robot.send_action(action)
                nxt, outcome = robot.get_observation(), arm.outcome()
                done = outcome.success or step + 1 == cfg.task.max_steps
                ep.transitions.append(Transition(
                    obs, applied, float(outcome.success), nxt, outcome.success,
                    done and not outcome.success, robot_id=robot.robot_id, episode_id=e, step=step))
                obs = nxt
                if done:
                    break
            ep.success = ep.transitions[-1].terminated
            buffer.add_episode(ep)
    finally:
        robot.disconnect()
        buffer.close()
    return run


@pytest.mark.slow
def test_train_reward_from_rerendered_frames(tmp_path, capsys) -> None:
    run = record_reach_run(tmp_path / "run", episodes=8)
    out = tmp_path / "reward.npz"
    code = main(["train-reward", str(run.root), "--camera", "side_cam", "--size", "32",
                 "--steps", "40", "--holdout", "0.25", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "episodes held out" in text and "held-out on" in text and "accuracy" in text
    model = SuccessClassifier.load(out)
    probs = model.probability({"side_cam": np.zeros((2, 32, 32, 3), np.uint8)})
    assert probs.shape == (2,) and np.all((0 <= probs) & (probs <= 1))


def test_train_reward_refuses_a_directory_that_is_no_run(tmp_path, capsys) -> None:
    code = main(["train-reward", str(tmp_path), "--camera", "side_cam"])
    assert code != 0
    assert "not a robot_rl run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_review_adds_the_policys_false_successes_as_negatives(tmp_path, capsys) -> None:
    """HIL-SERL's loop, one turn: a classifier that calls everything a success (threshold 0.01)
    ends each reviewed episode at its first step, the task rule disagrees, and those steps join
    the labelled run as failed episodes before the refit."""
    cams = ["robot.cameras=[side_cam]", "robot.image_size=16", "task.max_steps=8"]
    labelled = tmp_path / "labelled"
    assert main(["record-demos", "task=reach", *cams, "episodes=4", f"run.dir={labelled}"]) == 0
    policy = tmp_path / "policy"
    assert main(["train", "task=reach", *cams, "runtime.mode=sync", "run.env_steps=24",
                 "learner.warmup_steps=16", "learner.batch_size=8", "algo.params.hidden=[8,8]",
                 f"run.dir={policy}"]) == 0
    out = tmp_path / "reward.npz"
    fit = ["train-reward", str(labelled), "--camera", "side_cam", "--steps", "5", "--out",
           str(out), "--threshold", "0.01"]
    assert main(fit) == 0
    before = ZarrStorage.open_existing(RunDir(labelled).buffer).read_episodes()
    capsys.readouterr()
    assert main([*fit, "--review", str(policy), "--review-episodes", "3"]) == 0
    text = capsys.readouterr().out
    after = ZarrStorage.open_existing(RunDir(labelled).buffer).read_episodes()
    added = len(after["episode_id"]) - len(before["episode_id"])
    assert f"3 claimed successes in 3 episodes, {added} false" in text
    assert added >= 2  # reach's rule rarely agrees after one step from home
    assert not after["success"][-added:].any()  # failures: every frame a negative
    assert (after["length"][-added:] == 1).all()  # ended at the first (false) claim
    assert f"{added} frames added" in text and "held-out on" in text  # then refit on them


def test_review_needs_a_classifier_to_judge_with(tmp_path, capsys) -> None:
    labelled = record_reach_run(tmp_path / "run", episodes=2)
    code = main(["train-reward", str(labelled.root), "--camera", "side_cam", "--review",
                 str(labelled.root), "--out", str(tmp_path / "none.npz")])
    assert code != 0
    assert "fit one first without --review" in capsys.readouterr().err
