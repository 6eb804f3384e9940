"""Reward sources: task rule, human label, learned success classifier; and the classifier itself."""

from __future__ import annotations

import numpy as np
import pytest

from policies.encoders import EncoderConfig
from policies.reward_classifier import (
    ClassifierConfig,
    SuccessClassifier,
    scores,
    train_success_classifier,
)
from policies.rewards import REWARDS, ClassifierReward, RewardContext, RewardOutput
from robot_rl.core import ConfigError, CorruptDataError

OBS = {"ee_pos": np.zeros(3, np.float32)}


def lit_frames(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Success frames show a green square in the top-left corner; failures show it elsewhere."""
    labels = rng.random(n) < 0.3
    frames = rng.integers(0, 60, (n, 16, 16, 3), dtype=np.uint8)
    for i, ok in enumerate(labels):
        y, x = (2, 2) if ok else rng.integers(8, 12, 2)
        frames[i, y:y + 4, x:x + 4, 1] = 255
    return frames, labels


def test_task_rule_passes_the_task_reward_and_ends_on_success() -> None:
    rule = REWARDS.get("task_rule")()
    assert rule(RewardContext(OBS, task_reward=-0.3, task_success=False)) == RewardOutput(
        -0.3, False, False)
    assert rule(RewardContext(OBS, task_reward=1.0, task_success=True)) == RewardOutput(
        1.0, True, True)
    with pytest.raises(ConfigError, match="no task rule"):
        rule(RewardContext(OBS))


def test_human_label_ends_episodes_either_way() -> None:
    reward = REWARDS.get("human_label")()
    assert reward(RewardContext(OBS)) == RewardOutput(0.0, False, False)
    assert reward(RewardContext(OBS, label=True)) == RewardOutput(1.0, True, True)
    assert reward(RewardContext(OBS, label=False)) == RewardOutput(0.0, False, True)


@pytest.mark.slow
def test_classifier_learns_saves_and_ends_episodes_above_threshold(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frames, labels = lit_frames(300, rng)
    enc = EncoderConfig(cameras=("side",), channels=8, feature_dim=16, shift_pad=1)
    model, losses = train_success_classifier({"side": frames[:200]}, labels[:200], enc,
                                             ClassifierConfig(steps=120, batch_size=32))
    result = scores(model, {"side": frames[200:]}, labels[200:])
    assert result["accuracy"] >= 0.9 and result["success_recall"] >= 0.8
    path = tmp_path / "reward.npz"
    model.save(path)
    reward = REWARDS.get("classifier")(path, threshold=0.5)
    loaded = reward.classifier.probability({"side": frames[200:]})
    assert np.array_equal(loaded, model.probability({"side": frames[200:]}))
    i_ok = 200 + int(np.flatnonzero(labels[200:] & (loaded > 0.5))[0])
    i_bad = 200 + int(np.flatnonzero(~labels[200:] & (loaded < 0.5))[0])
    assert reward(RewardContext({"side": frames[i_ok]})) == RewardOutput(1.0, True, True)
    assert reward(RewardContext({"side": frames[i_bad]})) == RewardOutput(0.0, False, False)
    with pytest.raises(ConfigError, match="needs camera 'side'"):
        reward(RewardContext({"wrist": frames[0]}))


def test_classifier_refuses_one_class_and_bad_files(tmp_path) -> None:
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    enc = EncoderConfig(cameras=("side",), channels=8)
    with pytest.raises(ConfigError, match="both successes and failures"):
        train_success_classifier({"side": frames}, np.ones(4, bool), enc)
    with pytest.raises(ConfigError, match="threshold"):
        ClassifierReward(tmp_path / "x.npz", threshold=1.0)
    (tmp_path / "x.npz").write_text("garbage")
    with pytest.raises(CorruptDataError, match="not a saved success classifier"):
        SuccessClassifier.load(tmp_path / "x.npz")
