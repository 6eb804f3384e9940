"""Where a gateway delivers transitions: a durable sink that remembers what each stream sent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from robot_rl.core import Transition


class TransitionSink(ABC):
    """Commits transitions of numbered streams exactly once.

    `commit` is durable when it returns, and stores the stream's new high-water sequence number
    atomically with the data, so a replay after any crash can be deduplicated.
    """

    @abstractmethod
    def last_seq(self, stream_id: str) -> int:
        """The sequence number of the last committed transition of `stream_id`, or -1."""

    @abstractmethod
    def commit(
        self, stream_id: str, first_seq: int, transitions: Sequence[Transition],
        episode_ends: Sequence[tuple[int, bool]] = (),
    ) -> None:
        """Commit `transitions` numbered first_seq, first_seq+1, ...; `episode_ends` lists
        (seq, success) of transitions that ended an episode."""

    def close(self) -> None:  # noqa: B027 - a sink that holds nothing has nothing to release
        """Release what the sink holds (a writer lock); called once the gateway stopped."""
