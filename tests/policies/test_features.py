"""The frozen pretrained trunk path: behaviour-cloning pretraining, cached maps, keypoints
learned on them by the critic, save/load."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from policies import SAC, SACConfig
from policies.encoders import EncoderConfig
from policies.features import FrozenCameraFeatures, PretrainConfig, feature_key, pretrain_bc
from policies.state import save_module
from robot_rl.core import ArraySpec, ConfigError, CorruptDataError, DictSpec

ENC = EncoderConfig(cameras=("side",), channels=8, feature_dim=8, shift_pad=2)


def dot_frames(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Images with a bright square whose x position is the action to imitate."""
    frames = np.zeros((n, 24, 24, 3), np.uint8)
    xs = rng.integers(2, 20, n)
    for i, x in enumerate(xs):
        frames[i, 10:14, x - 2:x + 2] = 255
    return frames, ((xs - 11) / 9.0).astype(np.float32)[:, None]


@pytest.mark.slow
def test_pretrain_bc_learns_from_pixels_and_freezes() -> None:
    rng = np.random.default_rng(0)
    frames, actions = dot_frames(128, rng)
    state = np.zeros((128, 1), np.float32)
    features, losses = pretrain_bc({"side": frames}, state, actions, ENC,
                                   PretrainConfig(steps=100, batch_size=16))
    assert np.mean(losses[-20:]) < 0.25 * np.mean(losses[:5])
    assert all(not p.requires_grad for p in features.trunks.parameters())
    assert not features.trunks.training


def test_maps_are_cached_as_observation_fields_and_keypoints_learned_on_them(
        pixel_spec, make_batch) -> None:
    features = FrozenCameraFeatures(pixel_spec, EncoderConfig(cameras=("side", "wrist"),
                                                              channels=8, feature_dim=8))
    spec = features.output_spec(pixel_spec)
    assert spec[feature_key("side")] == ArraySpec((8, 3, 3), "float16", -1.0, 1.0)  # 24 px / 8
    obs = {k: v[0] for k, v in make_batch(pixel_spec, 1).obs.items()}
    out = features(obs)
    spec.validate(out)  # exactly the fields and shapes the buffer will store
    assert np.array_equal(out["side"], obs["side"])
    # the learner reads the cached maps, never the images: keypoint heads are its only weights
    stored = DictSpec({k: v for k, v in spec.items() if k not in ("side", "wrist")})
    algo = SAC(stored, ArraySpec((5,), "float32", -1, 1),
               SACConfig(hidden=(16,), encoder=EncoderConfig(exclude=("cube_pos",), keypoints=4)))
    assert algo.encoder.keys == ["feat/side", "feat/wrist", "ee_pos"]
    assert algo.encoder.dim == 2 * 4 * 2 + 3
    heads = {k: v.detach().clone() for k, v in algo.encoder.named_parameters()}
    assert set(heads) and all(k.startswith("heads.") for k in heads)
    batch = make_batch(pixel_spec, 8)
    cached = [features.features(o) for o in (batch.obs, batch.next_obs)]
    batch.obs.update(cached[0])
    batch.next_obs.update(cached[1])
    algo.update(iter(lambda: batch, None))
    moved = [k for k, v in algo.encoder.named_parameters() if not torch.equal(v, heads[k])]
    assert moved  # the critic trains the keypoints


def test_the_trunk_stays_frozen_while_the_learner_trains(pixel_spec, make_batch) -> None:
    features = FrozenCameraFeatures(pixel_spec, EncoderConfig(cameras=("side",), channels=8))
    before = {k: v.clone() for k, v in features.trunks.state_dict().items()}
    images = torch.as_tensor(make_batch(pixel_spec, 4).obs["side"])
    assert not features.trunks["side"](images).requires_grad
    features.features({"side": images.numpy()})
    for k, v in features.trunks.state_dict().items():
        assert torch.equal(v, before[k])


def test_save_load_round_trip_and_layout_check(tmp_path, pixel_spec, make_batch) -> None:
    features = FrozenCameraFeatures(pixel_spec, EncoderConfig(cameras=("wrist",), channels=8))
    path = tmp_path / "enc.npz"
    features.save(path)
    loaded = FrozenCameraFeatures.load(path, pixel_spec)
    batch = make_batch(pixel_spec, 3).obs
    key = "feat/wrist"
    assert np.array_equal(features.features(batch)[key], loaded.features(batch)[key])
    other = DictSpec({"wrist": ArraySpec((32, 32, 3), "uint8")})
    with pytest.raises(ConfigError, match="pretrain it again"):
        FrozenCameraFeatures.load(path, other)
    wider = FrozenCameraFeatures(pixel_spec, EncoderConfig(cameras=("wrist",), channels=16))
    old = FrozenCameraFeatures(pixel_spec, EncoderConfig(cameras=("wrist",), channels=8))
    save_module(tmp_path / "old.npz", wider.trunks, {"config": asdict(old.config),
                                                      "input_spec": old.input_spec.to_json()})
    with pytest.raises(ConfigError, match="pretrain it again"):
        FrozenCameraFeatures.load(tmp_path / "old.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(CorruptDataError, match="not a saved camera encoder"):
        FrozenCameraFeatures.load(tmp_path / "junk.npz")


def test_pretrain_rejects_mismatched_inputs() -> None:
    frames = np.zeros((4, 24, 24, 3), np.uint8)
    with pytest.raises(ConfigError, match="same number"):
        pretrain_bc({"side": frames}, np.zeros((3, 1), np.float32), np.zeros((4, 2)), ENC)
