"""Learner throughput of the three paths a policy can learn on: state, frozen camera features
(the pixel path that runs on a CPU), and end-to-end pixels (the CNN trained by the critic)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import print_table
from policies import SAC, EncoderConfig, FrozenCameraFeatures, SACConfig
from robot_rl.core import ArraySpec, Batch, DictSpec

Results = tuple[dict[str, Any], list[dict[str, Any]]]


def random_batch(spec: DictSpec, size: int, rng: np.random.Generator) -> Batch:
    """A batch of random values of `spec`'s shapes (uint8 images, float vectors)."""
    def obs() -> dict[str, np.ndarray]:
        return {k: (rng.integers(0, 256, (size, *s.shape), dtype=np.uint8) if s.dtype == "uint8"
                    else rng.normal(size=(size, *s.shape)).astype(np.float32))
                for k, s in spec.items()}
    return Batch(obs(), rng.uniform(-1, 1, (size, 5)).astype(np.float32),
                 rng.normal(size=size).astype(np.float32), obs(), np.zeros(size, np.float32),
                 np.zeros(size, bool), np.zeros(size, np.int8), np.zeros(size, np.int64))


def updates_per_second(spec: DictSpec, config: SACConfig, updates: int) -> float:
    """SAC learner updates per second at batch 256 on observations of `spec`."""
    algo = SAC(spec, ArraySpec((5,), "float32", -1, 1), config)
    batch = random_batch(spec, 256, np.random.default_rng(0))
    batches = iter(lambda: batch, None)
    algo.update(batches)  # warm-up
    start = time.perf_counter()
    for _ in range(updates):
        algo.update(batches)
    return updates / (time.perf_counter() - start)


def part_throughput(args: argparse.Namespace) -> Results:
    """Updates/s of each path, and the actor's cost of the frozen features per step."""
    import torch

    torch.set_num_threads(1)
    size = 64 if args.quick else 128
    vec = ArraySpec((15,), "float32")
    cams = {"side": ArraySpec((size, size, 3), "uint8"),
            "wrist": ArraySpec((size, size, 3), "uint8")}
    frozen = FrozenCameraFeatures(DictSpec(cams), EncoderConfig(cameras=("side", "wrist")))
    n = (5, 5, 1) if args.quick else (200, 200, 3)
    rows = {
        "state": updates_per_second(DictSpec({"proprio": vec, "object": ArraySpec((7,), "f4")}),
                                    SACConfig(), n[0]),
        "frozen_features": updates_per_second(frozen.output_spec(DictSpec({"proprio": vec})),
                                              SACConfig(), n[1]),
        "end_to_end_pixels": updates_per_second(
            DictSpec({"proprio": vec, **cams}),
            SACConfig(encoder=EncoderConfig(cameras=("side", "wrist"))), n[2]),
    }
    obs = {k: np.zeros(s.shape, np.uint8) for k, s in cams.items()}
    start, reps = time.perf_counter(), 5 if args.quick else 50
    for _ in range(reps):
        frozen(obs)
    actor_ms = 1000 * (time.perf_counter() - start) / reps
    print_table(["path", "updates/s", "vs end-to-end"],
                [[k, v, v / rows["end_to_end_pixels"]] for k, v in rows.items()],
                title=f"learner updates/s at batch 256 (2 cameras {size}x{size} where pixels)")
    print(f"actor-side frozen feature extraction: {actor_ms:.1f} ms per step (2 cameras)")
    return {"updates_per_s": rows, "actor_feature_ms": actor_ms, "image_size": size}, []
