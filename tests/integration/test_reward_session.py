"""`reward=classifier` end to end: `robot-rl train-reward` fits a classifier, a session uses it."""

from __future__ import annotations

import numpy as np
import pytest

from buffer import ZarrStorage
from buffer.episodes import EpisodeReader
from policies.encoders import EncoderConfig
from policies.reward_classifier import SuccessClassifier
from robot_rl.cli import main
from robot_rl.config import compose_session
from robot_rl.core import ArraySpec, ConfigError, DictSpec
from robot_rl.runtime.ray.session import RaySession
from robot_rl.runtime.run_dir import RunDir
from tests.integration.test_train_reward import record_reach_run

CAMERA = ["robot.cameras=[side_cam]", "robot.image_size=32"]


@pytest.mark.slow
def test_a_session_scores_steps_with_a_trained_classifier(tmp_path, capsys, ray_local) -> None:
    labelled = record_reach_run(tmp_path / "labelled", episodes=6)
    model_path = tmp_path / "reward.npz"
    assert main(["train-reward", str(labelled.root), "--camera", "side_cam", "--size", "32",
                 "--steps", "30", "--holdout", "0", "--out", str(model_path)]) == 0
    run = tmp_path / "run"
    code = main(["train", "task=reach", "task.max_steps=10", *CAMERA, "reward=classifier",
                 f"reward.params.path={model_path}", "reward.params.threshold=0.5",
                 "run.env_steps=30", "learner.warmup_steps=10", "learner.batch_size=8",
                 "algo.params.hidden=[16,16]", f"run.dir={run}"])
    assert code == 0, capsys.readouterr().err
    episodes = list(EpisodeReader(ZarrStorage.open_existing(RunDir(run).buffer)))
    frames = np.concatenate([ep.next_obs["side_cam"] for ep in episodes])  # what each step saw
    assert len(frames) >= 30 and frames.shape[1:] == (32, 32, 3)
    success = SuccessClassifier.load(model_path).probability({"side_cam": frames}) > 0.5
    reward = np.concatenate([ep.info["reward"] for ep in episodes])
    terminated = np.concatenate([ep.info["terminated"] for ep in episodes]).astype(bool)
    assert np.array_equal(reward, success.astype(np.float32))
    assert np.array_equal(terminated, success)
    assert RunDir(run).load_config().reward.name == "classifier"


def test_classifier_reward_without_a_path_names_the_missing_key(tmp_path) -> None:
    cfg = compose_session(["reward=classifier", f"run.dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match=r"reward.params.path"):
        RaySession(cfg, RunDir(tmp_path / "run"))


def test_classifier_reward_needs_the_robot_to_give_its_camera(tmp_path) -> None:
    path = tmp_path / "reward.npz"  # an untrained classifier of 32x32 side_cam frames
    SuccessClassifier(DictSpec({"side_cam": ArraySpec((32, 32, 3), "uint8")}),
                      EncoderConfig(cameras=("side_cam",), channels=8)).save(path)
    cfg = compose_session(["reward=classifier", f"reward.params.path={path}"])
    with pytest.raises(ConfigError, match="reads camera 'side_cam'.*robot.cameras"):
        RaySession(cfg, RunDir(tmp_path / "run"))


def test_unknown_reward_source_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="reward"):
        compose_session(["reward=oracle"])
    cfg = compose_session(["reward.name=oracle"])
    with pytest.raises(ConfigError, match="oracle"):
        RaySession(cfg, RunDir(tmp_path / "run"))
