"""The frozen pretrained camera trunk: feature maps computed once per step at the actor.

`FrozenCameraFeatures` adds a `feat/<camera>` field to each observation: a small (C, H/8, W/8)
float16 map of local features from a frozen CNN trunk, so the transition stored in the buffer
carries them. The learner's encoder learns keypoints on those maps (`encoders.KeypointHead`,
trained by the critic on all the data the run collects), so what the trunk must generalise is
only local appearance, which a few demos can teach. `pretrain_bc` trains the trunks by
behaviour cloning through keypoints on demo frames, colours and positions jittered;
`save` / `load` keep them in an .npz (no pickle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from policies.encoders import (
    ConvEncoder,
    EncoderConfig,
    KeypointHead,
    colour_jitter,
    is_image,
    random_shift,
)
from policies.networks import mlp
from policies.state import load_module, save_module
from robot_rl.core import ArraySpec, ConfigError, DictSpec, Observation

FEATURE_PREFIX = "feat/"


def feature_key(camera: str) -> str:
    """The observation field that caches a camera's feature map."""
    return FEATURE_PREFIX + camera


@dataclass
class PretrainConfig:
    """How `pretrain_bc` trains the camera trunks on demo frames."""

    steps: int = 2000
    """Gradient steps of behaviour cloning."""
    batch_size: int = 32
    """Frames per gradient step."""
    lr: float = 1e-3
    """Adam learning rate."""
    seed: int = 0
    """Seed of initialisation, batches and augmentation."""


class CameraTrunk(nn.Module):
    """Local features of one camera: uint8 (B, H, W, 3) -> (B, C, H/8, W/8) in [-1, 1].

    The image is averaged down 2x, then three 3x3 convolutions (the last two strided) and a 1x1
    projection to C channels: cheap enough for every step of a CPU actor at 128 px.
    """

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        if channels % 8:
            raise ConfigError(f"encoder channels must be a multiple of 8, got {channels}")
        c = channels
        self.net = nn.Sequential(
            nn.AvgPool2d(2),
            nn.Conv2d(3, c, 3, padding=1), nn.GroupNorm(8, c), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.ReLU(),
            nn.Conv2d(c, out_channels, 1), nn.Tanh(),
        )

    def forward(self, images: torch.Tensor, *, prepared: bool = False) -> torch.Tensor:
        x = images if prepared else ConvEncoder.prepare(images)
        return self.net(x)


class FrozenCameraFeatures:
    """Pretrained camera trunks, frozen; maps an observation to the same one plus its maps."""

    def __init__(self, spec: DictSpec, config: EncoderConfig) -> None:
        if not config.cameras:
            raise ConfigError("frozen camera features need at least one camera in encoder.cameras")
        missing = [cam for cam in config.cameras if cam not in spec]
        if missing:
            raise ConfigError(f"cameras {missing} are not in the observation {sorted(spec)}")
        for cam in config.cameras:
            if not is_image(spec[cam].shape) or spec[cam].dtype != "uint8":
                raise ConfigError(f"camera {cam!r} must be uint8 HxWx3, got {spec[cam]}")
        self.config = config = EncoderConfig(
            cameras=tuple(config.cameras), channels=config.channels,
            feature_dim=config.feature_dim, shift_pad=config.shift_pad,
            keypoints=config.keypoints,
        )
        self.cameras = list(config.cameras)
        self.input_spec = DictSpec({k: spec[k] for k in self.cameras})
        self.trunks = nn.ModuleDict({cam: CameraTrunk(config.channels, config.feature_dim)
                                     for cam in self.cameras})
        with torch.no_grad():
            self.map_shapes = {cam: tuple(self.trunks[cam](torch.zeros(
                (1, *spec[cam].shape), dtype=torch.uint8)).shape[1:]) for cam in self.cameras}
        self.freeze()

    def freeze(self) -> None:
        self.trunks.eval().requires_grad_(False)

    def output_spec(self, spec: DictSpec) -> DictSpec:
        """`spec` plus one `feat/<camera>` map per camera."""
        fields = dict(spec.items())
        for cam in self.cameras:
            fields[feature_key(cam)] = ArraySpec(self.map_shapes[cam], "float16", -1.0, 1.0)
        return DictSpec(fields)

    @torch.no_grad()
    def features(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Maps of a batch of observations: `feat/<camera>` -> (B, C, h, w) float16."""
        return {feature_key(cam): self.trunks[cam](torch.as_tensor(np.asarray(obs[cam])))
                .numpy().astype(np.float16) for cam in self.cameras}

    def __call__(self, obs: Observation) -> Observation:
        """One observation with its camera maps added (the actor calls this once per step)."""
        batch = {cam: np.asarray(obs[cam])[None] for cam in self.cameras}
        return {**obs, **{k: v[0] for k, v in self.features(batch).items()}}

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the trunk weights and the layout they expect to `path` (.npz, no pickle)."""
        meta = {"config": asdict(self.config), "input_spec": self.input_spec.to_json()}
        save_module(path, self.trunks, meta)

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
        try:
            features.trunks.load_state_dict(weights)
        except RuntimeError as exc:
            raise ConfigError(f"encoder {path} is of an older layout ({str(exc)[:80]}...): "
                              "pretrain it again (delete it, or set algo.features.weights)"
                              ) from None
        features.freeze()
        return features


def pretrain_bc(
    frames: Mapping[str, np.ndarray], state: np.ndarray, actions: np.ndarray,
    encoder: EncoderConfig, config: PretrainConfig | None = None,
) -> tuple[FrozenCameraFeatures, list[float]]:
    """Behaviour cloning on demo frames, then freeze the trunks: each camera's trunk feeds
    keypoints (as the learner will use them) which, with the state, predict the expert action.
    Every frame is colour-jittered and shifted, so the trunks learn shapes, not one scene.

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
    trunks = features.trunks.train().requires_grad_(True)
    heads = nn.ModuleDict({cam: KeypointHead(encoder.feature_dim, encoder.keypoints)
                           for cam in features.cameras})
    dim = sum(h.dim for h in heads.values())
    policy = mlp([dim + state.shape[1], 256, 256, actions.shape[1]])
    opt = torch.optim.Adam([*trunks.parameters(), *heads.parameters(), *policy.parameters()],
                           lr=cfg.lr)
    frames_t = {cam: torch.as_tensor(f) for cam, f in frames.items()}
    state_t = torch.as_tensor(state, dtype=torch.float32)
    state_t = (state_t - state_t.mean(0)) / (state_t.std(0) + 1e-3)
    actions_t = torch.as_tensor(actions, dtype=torch.float32)
    losses = []
    for _ in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        parts = []
        for cam in features.cameras:
            images = frames_t[cam][idx].permute(0, 3, 1, 2).float().div(255.0)
            images = random_shift(colour_jitter(images, gen), encoder.shift_pad, gen)
            parts.append(heads[cam](trunks[cam](images.sub(0.5), prepared=True)))
        pred = torch.tanh(policy(torch.cat([*parts, state_t[idx]], dim=-1)))
        loss = nn.functional.mse_loss(pred, actions_t[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    features.freeze()
    return features, losses
