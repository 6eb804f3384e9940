"""A success classifier on camera frames, trained from labelled frames (`robot-rl train-reward`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from policies.encoders import ConvEncoder, EncoderConfig, colour_jitter, random_shift
from policies.features import CameraTrunk
from policies.networks import mlp
from policies.state import load_module, save_module
from robot_rl.core import ArraySpec, ConfigError, DictSpec, Observation


@dataclass
class ClassifierConfig:
    """How the success classifier is built and trained."""

    steps: int = 1500
    """Gradient steps."""
    batch_size: int = 64
    """Frames per step, half successes and half failures."""
    lr: float = 3e-4
    """Adam learning rate."""
    seed: int = 0
    """Seed of initialisation, batches and augmentation."""


class SuccessClassifier(nn.Module):
    """P(success | camera frames): a CameraTrunk per camera (cheap at 128 px), its whole map
    flattened, and an MLP head giving a logit."""

    def __init__(self, spec: DictSpec, encoder: EncoderConfig) -> None:
        super().__init__()
        self.spec = DictSpec({cam: spec[cam] for cam in encoder.cameras})
        self.encoder_config = EncoderConfig(
            cameras=tuple(encoder.cameras), channels=encoder.channels,
            feature_dim=encoder.feature_dim, shift_pad=encoder.shift_pad,
        )
        self.trunks = nn.ModuleDict({cam: CameraTrunk(encoder.channels, encoder.feature_dim)
                                     for cam in encoder.cameras})
        with torch.no_grad():
            flat = sum(self.trunks[cam](torch.zeros((1, *spec[cam].shape), dtype=torch.uint8))
                       .numel() for cam in encoder.cameras)
        self.head = mlp([flat, 128, 1])

    def logits(self, obs: Mapping[str, torch.Tensor], *, augment: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        parts = []
        for cam, trunk in self.trunks.items():
            images = ConvEncoder.prepare(torch.as_tensor(obs[cam])) + 0.5  # [0, 1]
            if augment:
                images = random_shift(colour_jitter(images, generator),
                                      self.encoder_config.shift_pad, generator)
            parts.append(trunk(images - 0.5, prepared=True).flatten(1))
        return self.head(torch.cat(parts, dim=-1)).squeeze(-1)

    @torch.no_grad()
    def probability(self, obs: Observation) -> np.ndarray:
        """Success probability of each observation of a batch (camera fields (B, H, W, 3))."""
        self.eval()
        for cam, cam_spec in self.spec.items():
            if cam not in obs or tuple(np.shape(obs[cam])[1:]) != cam_spec.shape:
                raise ConfigError(f"the classifier needs camera {cam!r} as (B, {cam_spec.shape}); "
                                  f"got {np.shape(obs[cam]) if cam in obs else 'nothing'}")
        return torch.sigmoid(self.logits({c: np.asarray(obs[c]) for c in self.spec})).numpy()

    def save(self, path: Path) -> None:
        meta = {"encoder": asdict(self.encoder_config), "spec": self.spec.to_json()}
        save_module(path, self, meta)

    @classmethod
    def load(cls, path: Path) -> SuccessClassifier:
        meta, weights = load_module(path, "success classifier")
        model = cls(DictSpec.from_json(meta["spec"]), EncoderConfig(**meta["encoder"]))
        try:
            model.load_state_dict(weights)
        except RuntimeError:
            raise ConfigError(f"{path} is a success classifier of an older layout: train it "
                              "again with robot-rl train-reward") from None
        return model.eval()


def train_success_classifier(
    frames: Mapping[str, np.ndarray], labels: np.ndarray, encoder: EncoderConfig,
    config: ClassifierConfig | None = None, start: SuccessClassifier | None = None,
) -> tuple[SuccessClassifier, list[float]]:
    """Fit a classifier to `frames[camera]` (N, H, W, 3) uint8 and boolean `labels` (N,),
    from scratch or on from `start` (a refit after new negatives).

    Batches are balanced between successes and failures, images colour-jittered and shifted.
    """
    cfg = config or ClassifierConfig()
    labels = np.asarray(labels, bool)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    if len(pos) == 0 or len(neg) == 0:
        raise ConfigError(f"need both successes and failures to train on; got {len(pos)} "
                          f"successes and {len(neg)} failures")
    if any(len(f) != len(labels) for f in frames.values()):
        raise ConfigError("every camera needs exactly one frame per label")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    spec = DictSpec({cam: ArraySpec(f.shape[1:], "uint8") for cam, f in frames.items()})
    model = start if start is not None else SuccessClassifier(spec, encoder)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    half = cfg.batch_size // 2
    target = torch.cat([torch.ones(half), torch.zeros(cfg.batch_size - half)])
    losses = []
    model.train()
    for _ in range(cfg.steps):
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, cfg.batch_size - half)])
        obs = {cam: torch.as_tensor(f[idx]) for cam, f in frames.items()}
        loss = nn.functional.binary_cross_entropy_with_logits(
            model.logits(obs, augment=True, generator=gen), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


def scores(model: SuccessClassifier, frames: Mapping[str, np.ndarray], labels: np.ndarray,
           threshold: float = 0.5, batch_size: int = 256) -> dict[str, float]:
    """Accuracy, and recall of successes and of failures, of the thresholded predictions."""
    labels = np.asarray(labels, bool)
    probs = np.concatenate([
        model.probability({cam: f[i:i + batch_size] for cam, f in frames.items()})
        for i in range(0, len(labels), batch_size)
    ])
    right = (probs > threshold) == labels
    return {
        "accuracy": float(right.mean()),
        "success_recall": float(right[labels].mean()) if labels.any() else float("nan"),
        "failure_recall": float(right[~labels].mean()) if (~labels).any() else float("nan"),
    }
