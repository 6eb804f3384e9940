"""`robot-rl train-reward` on a real run directory: Zarr buffer, MuJoCo re-rendering."""

from __future__ import annotations

import numpy as np
import pytest

from buffer import ReplayBuffer
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
