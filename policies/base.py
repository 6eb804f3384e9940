"""The Policy and Algorithm interfaces every learner shares. Weights cross boundaries as numpy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from robot_rl.core import Batch, Observation

Weights = dict[str, np.ndarray]


class Policy(ABC):
    """Maps observations to actions; its weights are versioned numpy arrays by name."""

    version: int = 0

    @property
    @abstractmethod
    def obs_keys(self) -> list[str]:
        """The observation fields it reads: a learner samples only these from the buffer."""

    @abstractmethod
    def act(self, obs: Observation, *, deterministic: bool = False) -> np.ndarray: ...

    @abstractmethod
    def get_weights(self) -> Weights: ...

    @abstractmethod
    def set_weights(self, weights: Mapping[str, np.ndarray], version: int) -> None: ...


class Algorithm(ABC):
    """Trains a policy from batches; knows nothing of where the batches come from."""

    policy: Policy
    config_class: type  # the dataclass of its hyper-parameters, built from the `algo.params` config

    @abstractmethod
    def update(self, batches: Iterator[Batch]) -> dict[str, float]:
        """One learner step, drawing as many batches as it needs; returns scalar metrics."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: nested dicts of numpy arrays and plain scalars."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
