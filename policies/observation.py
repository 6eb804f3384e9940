"""Turns a dict observation into the flat state vector a state-based network reads."""

from __future__ import annotations

import numpy as np

from robot_rl.core import DictSpec, Observation


class StateFlattener:
    """Concatenates the 1-D float fields of an observation spec in a fixed (sorted) order."""

    def __init__(self, spec: DictSpec) -> None:
        self.keys = [k for k, s in spec.items() if len(s.shape) == 1]
        self.dim = int(sum(spec[k].shape[0] for k in self.keys))

    def __call__(self, obs: Observation) -> np.ndarray:
        """Works on one observation (D,) or a batch (B, D)."""
        return np.concatenate([np.asarray(obs[k], dtype=np.float32) for k in self.keys], axis=-1)
