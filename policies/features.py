"""The frozen pretrained encoder path: camera features computed once per step at the actor.

`FrozenCameraFeatures` adds a `feat/<camera>` float32 field to each observation, so the
transition stored in the buffer carries its features and the learner trains a state-sized
network on them instead of a CNN. `pretrain_bc` trains the CNNs by behaviour cloning on demo
frames; `save` / `load` keep them in an .npz (no pickle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from policies.encoders import EncoderConfig, ObservationEncoder
from policies.networks import mlp
from policies.state import load_module, save_module
from robot_rl.core import ArraySpec, ConfigError, DictSpec, Observation

FEATURE_PREFIX = "feat/"


def feature_key(camera: str) -> str:
    """The observation field that caches a camera's features."""
    return FEATURE_PREFIX + camera


@dataclass
class PretrainConfig:
    """How `pretrain_bc` trains the camera CNNs on demo frames."""

    steps: int = 2000
    """Gradient steps of behaviour cloning."""
    batch_size: int = 64
    """Frames per gradient step."""
    lr: float = 3e-4
    """Adam learning rate."""
    seed: int = 0
    """Seed of initialisation, batches and augmentation."""


class FrozenCameraFeatures:
    """Pretrained camera CNNs, frozen; maps an observation to the same one plus its features."""

    def __init__(self, spec: DictSpec, config: EncoderConfig) -> None:
        if not config.cameras:
            raise ConfigError("frozen camera features need at least one camera in encoder.cameras")
        missing = [cam for cam in config.cameras if cam not in spec]
        if missing:
            raise ConfigError(f"cameras {missing} are not in the observation {sorted(spec)}")
        self.config = config = EncoderConfig(
            cameras=tuple(config.cameras), channels=config.channels,
            feature_dim=config.feature_dim, shift_pad=config.shift_pad,
        )
        self.cameras = list(config.cameras)
        self.input_spec = DictSpec({k: spec[k] for k in self.cameras})
        self.encoder = ObservationEncoder(self.input_spec, config)
        self.freeze()

    def freeze(self) -> None:
        self.encoder.eval().requires_grad_(False)

    def output_spec(self, spec: DictSpec) -> DictSpec:
        """`spec` plus one `feat/<camera>` field per camera."""
        fields = dict(spec.items())
        for cam in self.cameras:
            fields[feature_key(cam)] = ArraySpec((self.config.feature_dim,), "float32", -1.0, 1.0)
        return DictSpec(fields)

    @torch.no_grad()
    def features(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Features of a batch of observations: `feat/<camera>` -> (B, feature_dim) float32."""
        out = {}
        for cam in self.cameras:
            feat = self.encoder.encode_camera(cam, torch.as_tensor(np.asarray(obs[cam])))
            out[feature_key(cam)] = feat.numpy().astype(np.float32)
        return out

    def __call__(self, obs: Observation) -> Observation:
        """One observation with its camera features added (the actor calls this once per step)."""
        batch = {cam: np.asarray(obs[cam])[None] for cam in self.cameras}
        return {**obs, **{k: v[0] for k, v in self.features(batch).items()}}

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the CNN weights and the layout they expect to `path` (.npz, no pickle)."""
        meta = {"config": asdict(self.config), "input_spec": self.input_spec.to_json()}
        save_module(path, self.encoder, meta)

    @classmethod
    def load(cls, path: Path, spec: DictSpec | None = None) -> FrozenCameraFeatures:
        """Read a saved encoder; if `spec` is given, its cameras must match the saved ones."""
        meta, weights = load_module(path, "camera encoder")
        saved = DictSpec.from_json(meta["input_spec"])
        if spec is not None:
            for cam, cam_spec in saved.items():
                if cam not in spec or (spec[cam].shape, spec[cam].dtype) != (
                        cam_spec.shape, cam_spec.dtype):  # bounds may differ: only layout counts
                    got = spec[cam] if cam in spec else "nothing"
                    raise ConfigError(
                        f"encoder {path} was trained on camera {cam!r} as {cam_spec}, the robot "
                        f"gives {got}: pretrain it again on this robot's frames"
                    )
        features = cls(saved, EncoderConfig(**{**meta["config"], "exclude": ()}))
        features.encoder.load_state_dict(weights)
        features.freeze()
        return features


def pretrain_bc(
    frames: Mapping[str, np.ndarray], state: np.ndarray, actions: np.ndarray,
    encoder: EncoderConfig, config: PretrainConfig | None = None,
) -> tuple[FrozenCameraFeatures, list[float]]:
    """Behaviour cloning on demo frames: CNN features + state -> expert action, then freeze.

    `frames[camera]` is (N, H, W, 3) uint8, `state` (N, S) and `actions` (N, A). Returns the
    frozen features and the loss curve (one value per step).
    """
    cfg = config or PretrainConfig()
    n = len(actions)
    if n == 0 or any(len(f) != n for f in frames.values()) or len(state) != n:
        raise ConfigError("pretrain_bc needs the same number (> 0) of frames, states and actions")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    spec = DictSpec({cam: ArraySpec(f.shape[1:], "uint8") for cam, f in frames.items()})
    features = FrozenCameraFeatures(spec, encoder)
    enc = features.encoder.train().requires_grad_(True)
    head = mlp([enc.dim + state.shape[1], 256, actions.shape[1]])
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=cfg.lr)
    frames_t = {cam: torch.as_tensor(f) for cam, f in frames.items()}
    state_t = torch.as_tensor(state, dtype=torch.float32)
    actions_t = torch.as_tensor(actions, dtype=torch.float32)
    losses = []
    for _ in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        parts = [enc.encode_camera(cam, frames_t[cam][idx], augment=True, generator=gen)
                 for cam in features.cameras]
        pred = torch.tanh(head(torch.cat([*parts, state_t[idx]], dim=-1)))
        loss = nn.functional.mse_loss(pred, actions_t[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    features.freeze()
    return features, losses
