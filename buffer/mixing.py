"""RLPD across buffers: batches mixing an online buffer with read-only prior buffers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from buffer.replay_buffer import ReplayBuffer
from robot_rl.core import Batch, ConfigError


class MixedReplay:
    """Each batch: `prior_fraction` from the prior buffers (split by their sizes), the rest online.

    Priors are earlier runs or demo buffers opened with `ReplayBuffer.open_prior`, never copied;
    give one a `Provenance` filter to use, e.g., only the interventions of run X.
    """

    def __init__(self, online: ReplayBuffer, priors: Sequence[ReplayBuffer],
                 prior_fraction: float = 0.5) -> None:
        if not 0.0 <= prior_fraction <= 1.0:
            raise ConfigError(f"prior_fraction must be in [0, 1], got {prior_fraction}")
        for prior in priors:
            if prior.storage.obs_spec != online.storage.obs_spec or \
                    prior.storage.action_spec != online.storage.action_spec:
                raise ConfigError(f"prior buffer {prior.storage.path} has other observation or "
                                  "action specs than this run; use priors of the same robot/task")
        self.online, self.priors, self.prior_fraction = online, list(priors), prior_fraction

    def __len__(self) -> int:
        return len(self.online) + sum(len(p) for p in self.priors)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        sizes = np.array([len(p) for p in self.priors], float)
        n_prior = int(round(batch_size * self.prior_fraction)) if sizes.sum() else 0
        if len(self.online) == 0:
            n_prior = batch_size
        counts = rng.multinomial(n_prior, sizes / sizes.sum()) if n_prior else []
        parts = [p.sample(int(n), rng) for p, n in zip(self.priors, counts, strict=False) if n]
        if batch_size - n_prior:
            parts.insert(0, self.online.sample(batch_size - n_prior, rng))
        return Batch.concat(parts)
