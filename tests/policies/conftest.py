"""Tiny specs and batches for policy tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from robot_rl.core import ArraySpec, Batch, DictSpec

torch.set_num_threads(1)  # tiny networks: two threads only contend on a busy 2-core machine


def random_batch(spec: DictSpec, size: int, seed: int = 0, act_dim: int = 5) -> Batch:
    """A random batch that matches `spec` (images uint8, state float32)."""
    rng = np.random.default_rng(seed)

    def obs() -> dict[str, np.ndarray]:
        out = {}
        for key, s in spec.items():
            if s.dtype == "uint8":
                out[key] = rng.integers(0, 256, (size, *s.shape), dtype=np.uint8)
            else:
                out[key] = rng.normal(size=(size, *s.shape)).astype(np.float32)
        return out

    return Batch(
        obs=obs(), action=rng.uniform(-1, 1, (size, act_dim)).astype(np.float32),
        reward=rng.normal(size=size).astype(np.float32), next_obs=obs(),
        terminated=(rng.random(size) < 0.2).astype(np.float32),
        intervened=np.zeros(size, bool), source=np.zeros(size, np.int8),
        policy_version=np.zeros(size, np.int64),
    )


@pytest.fixture
def make_batch() -> Callable[..., Batch]:
    """`make_batch(spec, size, seed=0)`: a random batch matching `spec`."""
    return random_batch


@pytest.fixture
def state_spec() -> DictSpec:
    vec = ArraySpec((3,), "float32")
    return DictSpec({"ee_pos": vec, "target_pos": vec})


@pytest.fixture
def pixel_spec() -> DictSpec:
    return DictSpec({
        "ee_pos": ArraySpec((3,), "float32"),
        "cube_pos": ArraySpec((3,), "float32"),
        "wrist": ArraySpec((24, 24, 3), "uint8"),
        "side": ArraySpec((24, 24, 3), "uint8"),
    })


@pytest.fixture
def action_spec() -> ArraySpec:
    return ArraySpec((5,), "float32", -1.0, 1.0)
