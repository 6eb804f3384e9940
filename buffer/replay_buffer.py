"""A replay buffer that commits transitions to Zarr and samples from RAM."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from buffer.zarr_storage import EPISODE_FIELDS, ZarrStorage
from robot_rl.core import ArraySpec, Batch, DictSpec, Episode, Transition


class ReplayBuffer:
    """Durable storage plus an in-RAM mirror for uniform sampling.

    Streaming use: `append(transitions)` stages rows, `end_episode(...)` closes an episode,
    `commit(meta)` makes everything staged durable at once (with `meta` in the same atomic
    record). `add_episode(episode)` does all three for a whole episode.
    """

    def __init__(self, path: Path, obs_spec: DictSpec, action_spec: ArraySpec) -> None:
        self.storage = ZarrStorage(path, obs_spec, action_spec)
        self.obs_keys = list(obs_spec)
        self._columns = self.storage.read_steps()
        self._episodes = self.storage.read_episodes()
        self._staged: list[Transition] = []
        self._staged_episodes: list[dict[str, Any]] = []
        self._open_start = self._open_episode_start()
        self._open_reward = float(self._columns["reward"][self._open_start:].sum())
        self._open_interventions = int(self._columns["intervened"][self._open_start:].sum())

    def __len__(self) -> int:
        return self.storage.steps

    @property
    def num_episodes(self) -> int:
        return self.storage.episodes

    @property
    def commit_meta(self) -> dict[str, Any]:
        """The metadata stored by the last commit."""
        return dict(self.storage.meta)

    def _open_episode_start(self) -> int:
        ep = self._episodes
        return int(ep["start"][-1] + ep["length"][-1]) if len(ep["start"]) else 0

    # -- writing ---------------------------------------------------------------------------------
    def append(self, transitions: Sequence[Transition]) -> None:
        """Stage transitions of the open episode; nothing is durable before `commit`."""
        self._staged.extend(transitions)
        self._open_reward += float(sum(t.reward for t in transitions))
        self._open_interventions += sum(1 for t in transitions if t.intervened)

    def end_episode(self, success: bool) -> None:
        """Close the open episode: its rows are those appended since the previous one ended."""
        end = len(self) + len(self._staged)
        self._staged_episodes.append({
            "start": self._open_start, "length": end - self._open_start, "success": success,
            "total_reward": self._open_reward, "interventions": self._open_interventions,
        })
        self._open_start, self._open_reward, self._open_interventions = end, 0.0, 0

    def commit(self, meta: dict[str, Any] | None = None) -> None:
        """Make staged rows and closed episodes durable in one atomic step."""
        steps = self._columns_of(self._staged) if self._staged else {}
        episodes = {
            k: np.array([e[k] for e in self._staged_episodes], dtype=self._episodes[k].dtype)
            for k in EPISODE_FIELDS
        } if self._staged_episodes else {}
        self.storage.append(steps, episodes, meta)
        for name, values in steps.items():
            self._columns[name] = np.concatenate([self._columns[name], values])
        for name, values in episodes.items():
            self._episodes[name] = np.concatenate([self._episodes[name], values])
        self._staged.clear()
        self._staged_episodes.clear()

    def add_episode(self, episode: Episode) -> None:
        self.append(episode.transitions)
        self.end_episode(episode.success)
        self.commit()

    def _columns_of(self, ts: Sequence[Transition]) -> dict[str, np.ndarray]:
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
        return steps

    # -- reading ---------------------------------------------------------------------------------
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
