"""Samplers choose rows among the committed rows resident in the cache; filters pick provenance."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from buffer.step_index import StepIndex
from robot_rl.core import ConfigError, Registry, Source


@dataclass(frozen=True)
class SampleView:
    """Candidate rows (resident, sampleable, passing the filter) and metadata of every row."""

    rows: np.ndarray
    index: StepIndex
    total_rows: int

    def col(self, name: str) -> np.ndarray:
        return self.index.col(name)[self.rows]


@dataclass(frozen=True)
class Provenance:
    """Which rows may be sampled: by source, intervention flag, robot, task and policy version."""

    sources: tuple[Source, ...] | None = None
    intervened: bool | None = None
    robots: tuple[str, ...] | None = None
    tasks: tuple[str, ...] | None = None
    min_policy_version: int | None = None

    def mask(self, index: StepIndex, rows: np.ndarray, robots: list[str],
             tasks: list[str]) -> np.ndarray:
        keep = np.ones(len(rows), bool)
        if self.sources is not None:
            keep &= np.isin(index.col("source")[rows], [int(s) for s in self.sources])
        if self.intervened is not None:
            keep &= index.col("intervened")[rows] == self.intervened
        for names, column, known in ((self.robots, "robot_id", robots),
                                     (self.tasks, "task", tasks)):
            if names is not None:
                ids = [known.index(n) for n in names if n in known]
                keep &= np.isin(index.col(column)[rows], ids)
        if self.min_policy_version is not None:
            keep &= index.col("policy_version")[rows] >= self.min_policy_version
        return keep


class Sampler(ABC):
    """Draws `batch_size` row numbers from a view; may return fewer only if the view is empty."""

    @abstractmethod
    def draw(self, view: SampleView, batch_size: int, rng: np.random.Generator) -> np.ndarray: ...


SAMPLERS: Registry[type[Sampler]] = Registry("sampler")


def _uniform(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rows[rng.integers(0, len(rows), size=n)] if len(rows) else rows[:0]


@SAMPLERS.register("uniform")
class UniformSampler(Sampler):
    """Every candidate row equally likely."""

    def draw(self, view: SampleView, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        return _uniform(view.rows, batch_size, rng)


@SAMPLERS.register("recent")
class RecentSampler(Sampler):
    """Uniform over the newest `window` committed rows."""

    def __init__(self, window: int = 100_000) -> None:
        if window < 1:
            raise ConfigError(f"recent sampler: window must be >= 1, got {window}")
        self.window = window

    def draw(self, view: SampleView, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        return _uniform(view.rows[view.rows >= view.total_rows - self.window], batch_size, rng)


@SAMPLERS.register("policy_version")
class PolicyVersionSampler(Sampler):
    """Bounded staleness (rows within `max_staleness` versions of the newest) and/or weights
    exp(-staleness / temperature)."""

    def __init__(self, max_staleness: int | None = None, temperature: float | None = None) -> None:
        if max_staleness is None and temperature is None:
            raise ConfigError("policy_version sampler: set max_staleness and/or temperature")
        self.max_staleness, self.temperature = max_staleness, temperature

    def draw(self, view: SampleView, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        versions = view.col("policy_version")
        if not len(versions):
            return view.rows[:0]
        staleness = versions.max() - versions
        keep = np.ones(len(versions), bool) if self.max_staleness is None else \
            staleness <= self.max_staleness
        rows, staleness = view.rows[keep], staleness[keep]
        if self.temperature is None:
            return _uniform(rows, batch_size, rng)
        weights = np.exp(-(staleness - staleness.min()) / self.temperature)
        return rows[rng.choice(len(rows), size=batch_size, p=weights / weights.sum())]


@SAMPLERS.register("balanced")
class BalancedSampler(Sampler):
    """Equal shares per robot or per task, uniform within each group."""

    def __init__(self, by: str = "robot_id") -> None:
        if by not in ("robot_id", "task"):
            raise ConfigError(f"balanced sampler: by must be 'robot_id' or 'task', got {by!r}")
        self.by = by

    def draw(self, view: SampleView, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        groups = view.col(self.by)
        names = np.unique(groups)
        if not len(names):
            return view.rows[:0]
        which = rng.integers(0, len(names), size=batch_size)
        out = np.empty(batch_size, np.int64)
        for i, name in enumerate(names):
            picks = which == i
            out[picks] = _uniform(view.rows[groups == name], int(picks.sum()), rng)
        return out
