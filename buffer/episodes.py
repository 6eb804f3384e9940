"""Whole episodes read back from storage, for tools: replay, export, info."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from buffer.zarr_storage import ZarrStorage
from robot_rl.core import Observation, RunDirError


@dataclass(frozen=True)
class EpisodeData:
    """One ended episode: observations, actions, per-step metadata and the final observation."""

    position: int  # index in the episode table (order of ending)
    episode_id: int
    robot: str
    task: str
    success: bool
    obs: Observation  # (T, ...) per key
    final_obs: Observation  # next observation of the last step
    action: np.ndarray
    info: dict[str, np.ndarray]  # step_info columns, (T,)

    @property
    def length(self) -> int:
        return len(self.action)

    @property
    def next_obs(self) -> Observation:
        """The observation after each step: the next step's, then the final one."""
        return {k: np.concatenate([v[1:], self.final_obs[k][None]]) for k, v in self.obs.items()}


class EpisodeReader:
    """Reads ended episodes of a buffer by position; negative positions count from the end."""

    def __init__(self, storage: ZarrStorage) -> None:
        self.storage = storage
        self.episodes = storage.read_episodes()
        self.info = storage.read_step_info()
        self.tails = storage.read_tails()

    def __len__(self) -> int:
        return len(self.episodes["episode_id"])

    def position(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise RunDirError(f"{self.storage.path} has {n} ended episodes; episode {index} is "
                              "out of range")
        return index % n

    def read(self, index: int) -> EpisodeData:
        pos = self.position(index)
        ep = {k: v[pos] for k, v in self.episodes.items()}
        rows = np.flatnonzero(self.info["episode_id"] == ep["episode_id"])
        data = self.storage.read_rows(rows)
        keys = list(self.storage.obs_spec)
        tail = np.flatnonzero(self.tails["row"] == rows[-1])
        final = {k: self.tails[f"obs/{k}"][tail[-1]] if len(tail) else data[f"obs/{k}"][-1]
                 for k in keys}
        return EpisodeData(
            pos, int(ep["episode_id"]), self.storage.robots[int(ep["robot_id"])],
            self.storage.tasks[int(ep["task"])], bool(ep["success"]),
            {k: data[f"obs/{k}"] for k in keys}, final, data["action"],
            {k: v[rows] for k, v in self.info.items()})

    def __iter__(self) -> Iterator[EpisodeData]:
        return (self.read(i) for i in range(len(self)))


def is_image(shape: tuple[int, ...], dtype: str) -> bool:
    """Camera observations: uint8 H x W x 3."""
    return dtype == "uint8" and len(shape) == 3 and shape[-1] == 3
