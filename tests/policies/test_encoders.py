"""Camera encoders, random-shift augmentation and fusion with state fields."""

from __future__ import annotations

import pytest
import torch

from policies.encoders import (
    EncoderConfig,
    ObservationEncoder,
    colour_jitter,
    random_shift,
    spatial_softmax,
)
from robot_rl.core import ArraySpec, ConfigError, DictSpec


def test_random_shift_moves_whole_images_by_at_most_pad_pixels() -> None:
    images = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    shifted = random_shift(images, pad=2, generator=gen)
    assert shifted.shape == images.shape
    for b in range(2):
        interior = shifted[b, 0, 2:6, 2:6]  # never touched by padding for |shift| <= 2
        matches = [
            (dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
            if torch.equal(interior, images[b, 0, 2 + dy:6 + dy, 2 + dx:6 + dx])
        ]
        assert len(matches) == 1
    assert torch.equal(random_shift(images, pad=0), images)


def test_random_shift_differs_per_sample() -> None:
    images = torch.rand(64, 3, 16, 16)
    same = images[:1].expand(64, -1, -1, -1).contiguous()
    shifted = random_shift(same, pad=4, generator=torch.Generator().manual_seed(1))
    distinct = {shifted[i].sum().item() for i in range(64)}
    assert len(distinct) > 10


def test_spatial_softmax_finds_where_each_channel_peaks() -> None:
    logits = torch.full((1, 2, 9, 9), -50.0)
    logits[0, 0, 2, 6] = 50.0  # row 2, column 6
    logits[0, 1, 8, 0] = 50.0
    xs, ys = spatial_softmax(logits)[0].split(2)
    grid = torch.linspace(-1, 1, 9)
    assert torch.allclose(xs, torch.stack([grid[6], grid[0]]), atol=1e-4)
    assert torch.allclose(ys, torch.stack([grid[2], grid[8]]), atol=1e-4)


def test_colour_jitter_changes_colours_per_image_and_stays_an_image() -> None:
    images = torch.rand(1, 3, 8, 8).expand(64, -1, -1, -1).contiguous()
    out = colour_jitter(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert len({round(out[i].mean().item(), 4) for i in range(64)}) > 10
    grey = [i for i in range(64) if torch.equal(out[i, 0], out[i, 1])]
    assert grey and all(torch.equal(out[i, 1], out[i, 2]) for i in grey)


def test_fusion_of_cameras_and_state(pixel_spec, make_batch) -> None:
    cfg = EncoderConfig(cameras=("side", "wrist"), exclude=("cube_pos",),
                        channels=8, feature_dim=16)
    enc = ObservationEncoder(pixel_spec, cfg)
    assert enc.state_keys == ["ee_pos"]
    assert enc.dim == 16 * 2 + 3
    obs = enc.to_tensors(make_batch(pixel_spec, 4).obs)
    out = enc(obs, augment=True)
    assert out.shape == (4, 35)
    assert torch.equal(out[:, 32:], obs["ee_pos"])  # state unchanged until it has statistics
    assert out[:, :32].abs().max() <= 1.0


def test_state_only_encoder_has_no_parameters(state_spec) -> None:
    enc = ObservationEncoder(state_spec)
    assert list(enc.parameters()) == []
    assert enc.dim == 6 and enc.keys == ["ee_pos", "target_pos"]


@pytest.mark.parametrize(("cfg", "message"), [
    (EncoderConfig(cameras=("front",)), "'front' is not in the observation"),
    (EncoderConfig(cameras=("ee_pos",)), "must be uint8 HxWx3"),
    (EncoderConfig(exclude=("nope",)), "'nope' is not in the observation"),
    (EncoderConfig(cameras=("side",), channels=12), "multiple of 8"),
])
def test_bad_encoder_config_names_the_problem(pixel_spec, cfg, message) -> None:
    with pytest.raises(ConfigError, match=message):
        ObservationEncoder(pixel_spec, cfg)


def test_encoder_that_reads_nothing_is_refused() -> None:
    spec = DictSpec({"x": ArraySpec((2,), "float32")})
    with pytest.raises(ConfigError, match="reads nothing"):
        ObservationEncoder(spec, EncoderConfig(exclude=("x",)))


def test_state_is_standardized_by_the_statistics_of_what_the_learner_saw(state_spec) -> None:
    """Fields of very different scales (a joint angle, a distance of a few cm) come out alike,
    batch-by-batch statistics equal those of all the data at once, and an outlier is clipped."""
    enc = ObservationEncoder(state_spec)
    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.02, 1.0, 5.0, 0.5, 0.5, 0.5])
    shift = torch.tensor([0.1, -2.0, 7.0, 0.0, 0.3, 0.0])
    data = torch.randn(3000, 6, generator=gen) * scale + shift
    for chunk in data.split(256):
        enc.observe({"ee_pos": chunk[:, :3], "target_pos": chunk[:, 3:]})
    norm = enc.state_norm
    assert norm.count == 3000
    torch.testing.assert_close(norm.mean, data.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(norm.var.sqrt(), data.std(0, unbiased=False), atol=1e-4,
                               rtol=1e-4)
    out = enc({"ee_pos": data[:, :3], "target_pos": data[:, 3:]})
    torch.testing.assert_close(out.mean(0), torch.zeros(6), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)
    far = enc({"ee_pos": torch.tensor([[1e3, 0.0, 0.0]]), "target_pos": torch.zeros(1, 3)})
    assert far[0, 0] == norm.clip


def test_a_field_that_never_varies_is_not_blown_up(state_spec) -> None:
    enc = ObservationEncoder(state_spec)
    steady = torch.zeros(100, 3)
    enc.observe({"ee_pos": steady, "target_pos": steady})
    out = enc({"ee_pos": torch.full((1, 3), 0.001), "target_pos": torch.zeros(1, 3)})
    torch.testing.assert_close(out[0, :3], torch.full((3,), 0.001 / enc.state_norm.min_std))
