"""The task rule as a source: a robot (a sim arm) that can judge its own scene says so here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskOutcome:
    """How the current state scores: a shaped reward and the success detector's verdict."""

    dense_reward: float
    success: bool

    def reward(self, kind: str) -> float:
        return float(self.success) if kind == "sparse" else self.dense_reward


class TaskOutcomeSource(ABC):
    """A robot that knows the task rule's verdict on its scene (privileged: sim arms only)."""

    @abstractmethod
    def outcome(self) -> TaskOutcome:
        """The task rule's reward and success for the current state."""


def task_outcomes(robot: object) -> TaskOutcomeSource | None:
    """The robot as a source of task outcomes, or None for one (a real arm) that has no rule."""
    return robot if isinstance(robot, TaskOutcomeSource) else None
