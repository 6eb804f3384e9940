"""The session's frozen-encoder pixel path: camera feature maps added to every observation.

With `algo.features.cameras` set, each observation gets `feat/<camera>`, a small map from a
frozen pretrained CNN trunk, computed once at the actor and stored with the transition; the
learner learns keypoints on the maps and trains state-sized networks on them. The trunk comes
from `algo.features.weights`, else from `<run>/encoder.npz`, else it is pretrained by
behaviour cloning on the run's demos and saved there (so a resumed run keeps the very same maps).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from buffer import ReplayBuffer, ZarrStorage
from buffer.episodes import EpisodeReader
from policies import EncoderConfig, FrozenCameraFeatures, PretrainConfig, pretrain_bc
from robot_rl.core import (
    ConfigError,
    DictSpec,
    Episode,
    Observation,
    Source,
    StorageError,
    Transition,
)
from robot_rl.runtime.run_dir import RunDir

log = logging.getLogger(__name__)


class FeatureObserver:
    """Adds frozen camera maps to observations; drops raw images unless told to keep them."""

    def __init__(self, cfg: DictConfig, raw_spec: DictSpec) -> None:
        self.cfg = cfg
        self.raw_spec = raw_spec
        self.encoder_config = EncoderConfig(cameras=tuple(cfg.cameras), channels=cfg.channels,
                                            feature_dim=cfg.feature_dim)
        self.features = FrozenCameraFeatures(raw_spec, self.encoder_config)  # weights: `prepare`
        full = self.features.output_spec(raw_spec)
        self.spec = full if cfg.keep_images else DictSpec(
            {k: s for k, s in full.items() if k not in self.features.cameras})

    def __call__(self, obs: Observation) -> Observation:
        out = self.features(obs)
        return out if self.cfg.keep_images else {k: out[k] for k in self.spec}

    def weights_path(self, run: RunDir) -> Path:
        """Where this run's encoder is: `algo.features.weights`, else `<run>/encoder.npz`."""
        return Path(self.cfg.weights) if self.cfg.weights else run.root / "encoder.npz"

    def prepare(self, run: RunDir) -> None:
        """Load the encoder weights, or pretrain them on the run's demos and save them."""
        saved = run.root / "encoder.npz"
        path = self.weights_path(run)
        if path.exists() or self.cfg.weights:
            self.load(path)
            return
        frames, state, actions = demo_frames(run.demos, self.features.cameras)
        self.features, losses = pretrain_bc(
            frames, state, actions, self.encoder_config,
            PretrainConfig(steps=self.cfg.pretrain_steps, seed=0))
        self.features.save(saved)
        log.info("frozen camera encoder pretrained on %d demo frames (loss %.4f) -> %s",
                 len(actions), float(np.mean(losses[-20:])), saved)
        self._check_dim(saved)

    def load(self, path: Path) -> None:
        """Load saved encoder weights (a run's encoder.npz)."""
        if not path.exists():
            raise ConfigError(f"algo.features.weights: no file {path}")
        self.features = FrozenCameraFeatures.load(path, self.raw_spec)
        log.info("frozen camera encoder from %s", path)
        self._check_dim(path)

    def _check_dim(self, path: Path) -> None:
        if self.features.config.feature_dim != self.cfg.feature_dim:
            raise ConfigError(f"encoder {path} gives {self.features.config.feature_dim} features "
                              f"per camera, algo.features.feature_dim says {self.cfg.feature_dim}")

    def featurize_demos(self, source: Path, into: ReplayBuffer) -> None:
        """Copy every raw demo episode of `source` into `into` with features added."""
        for ep in EpisodeReader(ZarrStorage.open_existing(source)):
            info, after = ep.info, ep.next_obs
            into.add_episode(Episode(ep.episode_id, ep.robot, ep.task, [
                Transition(
                    self({k: v[i] for k, v in ep.obs.items()}), ep.action[i],
                    float(info["reward"][i]), self({k: v[i] for k, v in after.items()}),
                    bool(info["terminated"][i]), bool(info["truncated"][i]),
                    bool(info["intervened"][i]), Source(int(info["source"][i])),
                    int(info["policy_version"][i]), robot_id=ep.robot, episode_id=ep.episode_id,
                    step=i, wall_time=float(info["timestamp"][i]))
                for i in range(ep.length)], ep.success))


def demo_frames(
    path: Path, cameras: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(frames per camera, 1-D state, actions) of every step of the raw demo buffer at `path`."""
    try:
        storage = ZarrStorage.open_existing(path)
    except StorageError:
        raise ConfigError(
            f"frozen camera features need weights: set algo.features.weights=<encoder.npz>, or "
            f"record demos into {path} first so the encoder can be pretrained on them") from None
    steps = storage.read_steps()
    missing = [c for c in cameras if f"obs/{c}" not in steps]
    if missing or len(steps["action"]) == 0:
        raise ConfigError(f"the demos in {path} hold no frames of cameras {missing or cameras}: "
                          "record them with robot.cameras set")
    state_keys = [k for k, s in storage.obs_spec.items() if len(s.shape) == 1]
    state = np.concatenate([steps[f"obs/{k}"].astype(np.float32) for k in state_keys], axis=1)
    return {c: np.asarray(steps[f"obs/{c}"]) for c in cameras}, state, steps["action"]
