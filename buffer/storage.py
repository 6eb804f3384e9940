"""The Storage interface: where a buffer's rows live durably, behind one atomic commit.

`ZarrStorage` is the implementation; `ReplayBuffer` composes a storage with a `Writer`
(`buffer.writer`) and a `Sampler` (`buffer.samplers`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.core import ArraySpec, DictSpec, Observation


class Storage(ABC):
    """Staged rows become visible, all at once, at `commit`; readers see only committed rows."""

    path: Path
    obs_spec: DictSpec
    action_spec: ArraySpec
    commit_no: int
    """The number of the commit this object reads (it grows by one per commit)."""
    meta: dict[str, Any]
    """The metadata stored by that commit."""
    robots: list[str]
    tasks: list[str]
    next_episode: int

    @abstractmethod
    def latest_commit_no(self) -> int:
        """The number of the newest commit on disk, read from its record alone: a reader that
        finds it equal to `commit_no` has nothing new to take in."""

    @abstractmethod
    def stage(self, table: str, columns: Mapping[str, np.ndarray | Sequence[np.ndarray]]
              ) -> None:
        """Add rows to `table` (steps, step_info, episodes, tails): per column an array of rows
        or one array per row; durable only at commit."""

    @abstractmethod
    def commit(self, meta: dict[str, Any] | None, robots: list[str], tasks: list[str],
               next_episode: int, open_tails: dict[int, Observation] | None = None
               ) -> dict[str, dict[str, np.ndarray]]:
        """Make everything staged durable in one atomic step, with `meta` in the same record,
        and `open_tails` (step row -> next observation of open episodes' last rows) with it;
        return the rows each table gained."""

    @property
    @abstractmethod
    def steps(self) -> int:
        """Committed step rows."""

    @property
    @abstractmethod
    def episodes(self) -> int:
        """Committed (ended) episodes."""

    @property
    @abstractmethod
    def chunk_rows(self) -> int:
        """Step rows per chunk, the unit of caching and checksums."""

    @abstractmethod
    def read_step_info(self) -> dict[str, np.ndarray]:
        """Per-step metadata of every committed row."""

    @abstractmethod
    def read_episodes(self) -> dict[str, np.ndarray]:
        """Per-episode columns, in the order episodes ended."""

    @abstractmethod
    def read_tails(self) -> dict[str, np.ndarray]:
        """Next observations stored apart from the rows (episode ends, open episodes)."""

    @abstractmethod
    def read_chunk(self, chunk: int, columns: Sequence[str] | None = None
                   ) -> dict[str, np.ndarray]:
        """Observations and actions of one chunk of step rows, verified; `columns` ("obs/<key>",
        "action") reads only those, leaving the others on disk."""

    @abstractmethod
    def read_rows(self, rows: np.ndarray, columns: Sequence[str] | None = None
                  ) -> dict[str, np.ndarray]:
        """Observations and actions (or only `columns`) of arbitrary committed rows."""

    @abstractmethod
    def quarantine(self, table: str, chunk: int, reason: str) -> None:
        """Exclude a damaged chunk from sampling, and say why."""

    @abstractmethod
    def quarantined_rows(self) -> np.ndarray:
        """A bool mask over committed step rows: True where a row's chunk is quarantined."""
