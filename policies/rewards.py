"""Reward sources behind one interface: the task rule, a human's label, a learned classifier.

A `Reward` scores one step from a `RewardContext` and may end the episode. New sources
register with `@REWARDS.register(name)` or the `robot_rl.rewards` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from policies.reward_classifier import SuccessClassifier
from robot_rl.core import ConfigError, Observation, Registry


@dataclass(frozen=True)
class RewardContext:
    """What a reward source may look at for one step."""

    next_obs: Observation
    task_reward: float | None = None
    """The robot's task rule's shaped reward, where it has one (sim tasks do)."""
    task_success: bool | None = None
    """The task rule's success detector, where it has one."""
    label: bool | None = None
    """A person's verdict from a teleop device or the web page: True success, False failure."""


@dataclass(frozen=True)
class RewardOutput:
    """The step's reward, whether it counts as success, and whether the episode ends here."""

    reward: float
    success: bool
    terminate: bool


class Reward(ABC):
    """Scores one step."""

    @abstractmethod
    def __call__(self, ctx: RewardContext) -> RewardOutput: ...


REWARDS: Registry[type[Reward]] = Registry("reward", entry_point_group="robot_rl.rewards")


@REWARDS.register("task_rule")
class TaskRuleReward(Reward):
    """The task's own rule: sparse 1/0 on success, or its shaped (dense) reward."""

    def __init__(self, kind: str = "sparse") -> None:
        if kind not in ("sparse", "dense"):
            raise ConfigError(f"task_rule reward kind must be 'sparse' or 'dense', got {kind!r}")
        self.kind = kind

    def __call__(self, ctx: RewardContext) -> RewardOutput:
        if ctx.task_success is None or ctx.task_reward is None:
            raise ConfigError("this robot has no task rule for rewards: use reward=human_label "
                              "or reward=classifier")
        reward = float(ctx.task_success) if self.kind == "sparse" else float(ctx.task_reward)
        return RewardOutput(reward, ctx.task_success, ctx.task_success)


@REWARDS.register("human_label")
class HumanLabelReward(Reward):
    """A person presses success (reward 1, episode ends) or failure (reward 0, episode ends)."""

    def __call__(self, ctx: RewardContext) -> RewardOutput:
        if ctx.label is None:
            return RewardOutput(0.0, False, False)
        return RewardOutput(float(ctx.label), ctx.label, True)


@REWARDS.register("classifier")
class ClassifierReward(Reward):
    """A learned success classifier on camera frames; success above `threshold` ends the episode."""

    def __init__(self, path: str | Path, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"classifier threshold must be in (0, 1), got {threshold}")
        self.classifier = SuccessClassifier.load(Path(path))
        self.threshold = threshold

    def __call__(self, ctx: RewardContext) -> RewardOutput:
        prob = float(self.classifier.probability({k: v[None] for k, v in ctx.next_obs.items()})[0])
        success = prob > self.threshold
        return RewardOutput(float(success), success, success)
