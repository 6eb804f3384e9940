"""RLPD's one mix: each batch part online data, part demo side (demos, takeovers, priors).

The demo side is any number of buffers: the run's own demo buffer (demonstrations and every
step a person took over, routed there by `robot_rl.core.is_demo_side`) and read-only prior
buffers of earlier runs or recorded demos, opened with `ReplayBuffer.open_prior`, never copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from buffer.replay_buffer import ReplayBuffer
from robot_rl.core import Batch, ConfigError, batch_split


class DemoMix:
    """Each batch: `demo_fraction` of its rows from the demo side (split across its buffers by
    their sizes), the rest online; all online while the demo side is empty, and all demo side
    while nothing is online."""

    def __init__(self, online: ReplayBuffer, demo_side: Sequence[ReplayBuffer],
                 demo_fraction: float) -> None:
        batch_split(1, demo_fraction)  # a bad fraction fails here, not at the first batch
        for buffer in demo_side:
            if buffer.storage.obs_spec != online.storage.obs_spec or \
                    buffer.storage.action_spec != online.storage.action_spec:
                raise ConfigError(f"demo-side buffer {buffer.storage.path} has other observation "
                                  "or action specs than this run; use demos and priors of the "
                                  "same robot and task")
        self.online, self.demo_side, self.demo_fraction = online, list(demo_side), demo_fraction

    def __len__(self) -> int:
        return len(self.online) + sum(len(b) for b in self.demo_side)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        sizes = np.array([len(b) for b in self.demo_side], float)
        if not sizes.sum():
            return self.online.sample(batch_size, rng)
        n_online, n_demo = batch_split(batch_size, self.demo_fraction)
        if len(self.online) == 0:
            n_online, n_demo = 0, batch_size
        counts = [n_demo] if len(sizes) == 1 else rng.multinomial(n_demo, sizes / sizes.sum())
        parts = [self.online.sample(n_online, rng)] if n_online else []
        parts += [b.sample(int(n), rng) for b, n in zip(self.demo_side, counts, strict=True) if n]
        return Batch.concat(parts)

    def close(self) -> None:
        """Stop the loaders of every buffer of the mix."""
        for buffer in [self.online, *self.demo_side]:
            buffer.close()
