"""Observation encoders in plain torch: camera CNNs with random-shift augmentation, learned
keypoints on cached feature maps, plus state.

An `ObservationEncoder` turns a dict observation (uint8 HxWx3 camera images, float (C, H, W)
feature maps of a frozen camera trunk, and 1-D state fields) into one feature vector that the
actor and the critics of an algorithm share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from policies.networks import RunningNorm
from robot_rl.core import ConfigError, DictSpec, Observation


@dataclass
class EncoderConfig:
    """Which observation fields an encoder reads and how it encodes camera images."""

    cameras: tuple[str, ...] = ()
    """Image fields (uint8 HxWx3) to encode with a CNN each; empty = a state-only encoder."""
    exclude: tuple[str, ...] = ()
    """1-D fields left out of the state vector (e.g. object poses for a pixels-only policy)."""
    channels: int = 32
    """Channels of every convolution of the camera CNN."""
    feature_dim: int = 64
    """Size of each camera's feature vector."""
    shift_pad: int = 4
    """Random-shift augmentation: pixels of replicate padding before a random crop (0 = off)."""
    keypoints: int = 16
    """Keypoints learned on each cached feature map (float (C, H, W) fields)."""


def is_image(shape: tuple[int, ...]) -> bool:
    """Camera fields are HxWx3 arrays."""
    return len(shape) == 3 and shape[-1] == 3


def is_feature_map(shape: tuple[int, ...], dtype: str) -> bool:
    """Cached feature maps of a frozen camera trunk are float (C, H, W) arrays."""
    return len(shape) == 3 and dtype.startswith("float")


def spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Expected (x, y) image position, in [-1, 1], of each channel's softmax over (B, K, H, W)
    logits: (B, 2K), all x then all y."""
    b, k, h, w = logits.shape
    prob = torch.softmax(logits.flatten(2), dim=-1).view(b, k, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=logits.device)
    ys = torch.linspace(-1.0, 1.0, h, device=logits.device)
    return torch.cat([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=-1)


class KeypointHead(nn.Module):
    """K learned keypoints on a feature map: a 1x1 convolution scores every cell for each
    keypoint, a spatial softmax (with a learned temperature) turns the scores into positions."""

    def __init__(self, channels: int, keypoints: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, keypoints, 1)
        self.log_inv_temperature = nn.Parameter(torch.zeros(()))
        self.dim = 2 * keypoints

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return spatial_softmax(self.score(maps.float()) * self.log_inv_temperature.exp())


def colour_jitter(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image: colour channels permuted and mixed, gain and brightness changed, one in five
    made grey; (B, 3, H, W) in [0, 1]. Teaches shape over colour, as a randomized scene needs."""
    b = images.shape[0]
    perm = torch.stack([torch.randperm(3, generator=generator) for _ in range(b)])
    mix = torch.eye(3)[perm] + 0.2 * torch.randn(b, 3, 3, generator=generator)
    grey = torch.rand(b, generator=generator) < 0.2
    mix[grey] = 1.0 / 3.0
    gain = 0.7 + 0.6 * torch.rand(b, 1, 1, 1, generator=generator)
    shift = 0.3 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    mixed = torch.einsum("bij,bjhw->bihw", mix.to(images.device), images)
    return (mixed * gain.to(images.device) + shift.to(images.device)).clamp(0.0, 1.0)


def random_shift(
    images: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by up to `pad` pixels in x and y, edges replicated."""
    if pad <= 0:
        return images
    b, _, h, w = images.shape
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator)
    rows = (offsets[0, :, None] + torch.arange(h)).to(images.device)  # (B, H)
    cols = (offsets[1, :, None] + torch.arange(w)).to(images.device)  # (B, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return crops.permute(0, 3, 1, 2)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and a skip connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(8, channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(8, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ConvEncoder(nn.Module):
    """A small ResNet for one camera: strided stem, two down-sampling residual stages, a projection.

    Input uint8 (B, H, W, 3); output (B, feature_dim) features in [-1, 1].
    """

    def __init__(self, height: int, width: int, channels: int = 32, feature_dim: int = 64) -> None:
        super().__init__()
        if channels % 8:
            raise ConfigError(f"encoder channels must be a multiple of 8, got {channels}")
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.ReLU(),
            ResidualBlock(c),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.ReLU(),
            ResidualBlock(c),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.ReLU(),
        )
        with torch.no_grad():
            flat = self.net(torch.zeros(1, 3, height, width)).numel()
        self.project = nn.Sequential(
            nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh()
        )

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) centred on zero."""
        return images.permute(0, 3, 1, 2).float().div(255.0).sub(0.5)

    def forward(self, images: torch.Tensor, *, prepared: bool = False) -> torch.Tensor:
        x = images if prepared else self.prepare(images)
        return self.project(self.net(x).flatten(1))


def _module_name(field_name: str) -> str:
    """Observation fields may contain '/', which torch module names may not."""
    return field_name.replace("/", "__")


class ObservationEncoder(nn.Module):
    """Fuses one ConvEncoder per camera, one KeypointHead per cached feature map and the
    concatenated 1-D state fields; the critic trains the CNNs and keypoint heads.

    With no cameras and no maps it has no parameters: the plain state vector (the state path).
    """

    def __init__(self, spec: DictSpec, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or EncoderConfig()
        for name in (*cfg.cameras, *cfg.exclude):
            if name not in spec:
                raise ConfigError(
                    f"encoder field {name!r} is not in the observation; it has {sorted(spec)}"
                )
        for name in cfg.cameras:
            if not is_image(spec[name].shape) or spec[name].dtype != "uint8":
                raise ConfigError(f"camera {name!r} must be uint8 HxWx3, got {spec[name]}")
        self.cameras = list(cfg.cameras)
        self.state_keys = [
            k for k, s in spec.items() if len(s.shape) == 1 and k not in cfg.exclude
        ]
        self.maps = [k for k, s in spec.items() if k not in (*cfg.cameras, *cfg.exclude)
                     and is_feature_map(s.shape, s.dtype)]
        self.convs = nn.ModuleDict({
            _module_name(name): ConvEncoder(*spec[name].shape[:2], cfg.channels, cfg.feature_dim)
            for name in self.cameras
        })
        self.heads = nn.ModuleDict({_module_name(name): KeypointHead(spec[name].shape[0],
                                                                     cfg.keypoints)
                                    for name in self.maps})
        state_dim = int(sum(spec[k].shape[0] for k in self.state_keys))
        # joint angles of O(1) beside a distance to the goal of a few cm: standardized, each
        # field weighs in by how much it varies, not by its unit
        self.state_norm = RunningNorm(state_dim)
        self.dim = (state_dim + cfg.feature_dim * len(self.cameras)
                    + 2 * cfg.keypoints * len(self.maps))
        if self.dim == 0:
            raise ConfigError("the encoder reads nothing: no 1-D field or camera is left")

    @property
    def keys(self) -> list[str]:
        """The observation fields this encoder reads."""
        return [*self.cameras, *self.maps, *self.state_keys]

    def to_tensors(self, obs: Observation) -> dict[str, torch.Tensor]:
        """numpy fields -> tensors (images stay uint8); works on one observation or a batch."""
        return {k: torch.as_tensor(np.asarray(obs[k])) for k in self.keys}

    def encode_camera(
        self, name: str, images: torch.Tensor, *, augment: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Features (B, feature_dim) of one camera's uint8 (B, H, W, 3) images."""
        x = ConvEncoder.prepare(images)
        if augment:
            x = random_shift(x, self.config.shift_pad, generator)
        return self.convs[_module_name(name)](x, prepared=True)

    def forward(
        self, obs: Mapping[str, torch.Tensor], *, augment: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        parts = [self.encode_camera(name, obs[name], augment=augment, generator=generator)
                 for name in self.cameras]
        parts.extend(self.heads[_module_name(k)](obs[k]) for k in self.maps)
        if self.state_keys:
            parts.append(self.state_norm(self.state(obs)))
        return torch.cat(parts, dim=-1)

    def state(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The 1-D fields concatenated, as they are (B, state_dim)."""
        return torch.cat([obs[k].float() for k in self.state_keys], dim=-1)

    def observe(self, obs: Mapping[str, torch.Tensor]) -> None:
        """Learn the state vector's statistics from a batch the learner trains on."""
        if self.state_keys:
            self.state_norm.update(self.state(obs))
