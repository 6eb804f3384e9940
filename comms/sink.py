"""Where a gateway delivers transitions: a durable sink that remembers what each stream sent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from robot_rl.core import SpecError, Transition


@dataclass(frozen=True)
class StreamBatch:
    """Transitions of one stream numbered first_seq, first_seq+1, ...; `episode_ends` lists
    (seq, success) of those that ended an episode (or of the one just before first_seq)."""

    stream_id: str
    first_seq: int
    transitions: Sequence[Transition]
    episode_ends: Sequence[tuple[int, bool]] = ()

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.transitions) - 1


class TransitionSink(ABC):
    """Commits transitions of numbered streams exactly once.

    A commit is durable when it returns, and stores each stream's new high-water sequence number
    atomically with the data, so a replay after any crash can be deduplicated.
    """

    @abstractmethod
    def last_seq(self, stream_id: str) -> int:
        """The sequence number of the last committed transition of `stream_id`, or -1."""

    @abstractmethod
    def commit_many(self, batches: Sequence[StreamBatch]) -> list[str | None]:
        """Commit the batches (of distinct streams, each following its stream's mark) in one
        durable step, rows and marks together. A batch the sink refuses (off the spec) is left
        out before anything is staged: its entry in the returned list says why (None:
        committed). Any other failure raises, and then nothing of the call is committed."""

    def commit(self, stream_id: str, first_seq: int, transitions: Sequence[Transition],
               episode_ends: Sequence[tuple[int, bool]] = ()) -> None:
        """Commit one stream's batch; SpecError if the sink refuses it."""
        refusal = self.commit_many([StreamBatch(stream_id, first_seq, transitions,
                                                episode_ends)])[0]
        if refusal is not None:
            raise SpecError(refusal)

    def close(self) -> None:  # noqa: B027 - a sink that holds nothing has nothing to release
        """Release what the sink holds (a writer lock); called once the gateway stopped."""
