"""A replay buffer that commits every finished chunk to Zarr and samples from RAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from buffer.zarr_storage import EPISODE_FIELDS, ZarrStorage
from robot_rl.core import ArraySpec, Batch, DictSpec, Episode, Transition


class ReplayBuffer:
    """Durable storage plus an in-RAM mirror for uniform sampling.

    `add_episode` commits the episode's transitions at once, so a crash loses at most the
    episode in progress.
    """

    def __init__(self, path: Path, obs_spec: DictSpec, action_spec: ArraySpec) -> None:
        self.storage = ZarrStorage(path, obs_spec, action_spec)
        self.obs_keys = list(obs_spec)
        self._columns = self.storage.read_steps()
        self._episodes = self.storage.read_episodes()

    def __len__(self) -> int:
        return self.storage.steps

    @property
    def num_episodes(self) -> int:
        return self.storage.episodes

    def add_episode(self, episode: Episode) -> None:
        ts = episode.transitions
        if not ts:
            return
        steps: dict[str, np.ndarray] = {}
        for k in self.obs_keys:
            steps[f"obs/{k}"] = np.stack([t.obs[k] for t in ts])
            steps[f"next_obs/{k}"] = np.stack([t.next_obs[k] for t in ts])
        steps["action"] = np.stack([t.action for t in ts])
        steps["reward"] = np.array([t.reward for t in ts], np.float32)
        steps["terminated"] = np.array([t.terminated for t in ts])
        steps["truncated"] = np.array([t.truncated for t in ts])
        steps["intervened"] = np.array([t.intervened for t in ts])
        steps["source"] = np.array([int(t.source) for t in ts], np.int8)
        steps["policy_version"] = np.array([t.policy_version for t in ts], np.int64)
        steps["episode_id"] = np.array([t.episode_id for t in ts], np.int64)
        steps["wall_time"] = np.array([t.wall_time for t in ts], np.float64)
        episodes = {
            "start": np.array([len(self)]),
            "length": np.array([episode.length]),
            "success": np.array([episode.success]),
            "total_reward": np.array([episode.total_reward], np.float32),
            "interventions": np.array([episode.interventions]),
        }
        self.storage.append(steps, episodes)
        for name, values in steps.items():
            self._columns[name] = np.concatenate([self._columns[name], values])
        for name, values in episodes.items():
            self._episodes[name] = np.concatenate([self._episodes[name], values])

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        idx = rng.integers(0, len(self), size=batch_size)
        c = self._columns
        return Batch(
            obs={k: c[f"obs/{k}"][idx] for k in self.obs_keys},
            action=c["action"][idx],
            reward=c["reward"][idx],
            next_obs={k: c[f"next_obs/{k}"][idx] for k in self.obs_keys},
            terminated=c["terminated"][idx].astype(np.float32),
            intervened=c["intervened"][idx],
            source=c["source"][idx],
            policy_version=c["policy_version"][idx],
        )

    def episode_table(self) -> dict[str, np.ndarray]:
        """Per-episode columns: start, length, success, total_reward, interventions."""
        return {k: self._episodes[k].copy() for k in EPISODE_FIELDS}
