"""The learner: updates an algorithm from an iterator of batches and versions its policy.

It knows nothing of robots or control steps; the session calls `update` between actor steps
(today in one process, later from its own).
"""

from __future__ import annotations

from collections.abc import Iterator

from policies import Algorithm
from robot_rl.core import Batch


class Learner:
    """Runs `algorithm` on `batches`; after each call the policy's version is the update count."""

    def __init__(self, algorithm: Algorithm, batches: Iterator[Batch], updates: int = 0) -> None:
        self.algorithm, self.batches, self.updates = algorithm, batches, updates

    @property
    def version(self) -> int:
        """The version of the policy the last update produced (its update count)."""
        return self.updates

    def update(self, n: int) -> dict[str, float]:
        """`n` learner steps; the metrics of the last one."""
        metrics: dict[str, float] = {}
        for _ in range(n):
            metrics = self.algorithm.update(self.batches)
            self.updates += 1
        self.algorithm.policy.version = self.updates
        return metrics
