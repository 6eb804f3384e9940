"""Reward sources behind one interface: the task rule, a human's label, a learned classifier.

A `Reward` scores one step from a `RewardContext` and may end the episode. New sources
register with `@REWARDS.register(name)` or the `robot_rl.rewards` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from robot_rl.core import ConfigError, DictSpec, Observation, Registry


@dataclass(frozen=True)
class RewardContext:
    """What a reward source may look at for one step."""

    next_obs: Observation
    task_reward: float | None = None
    """The task rule's reward, sparse or shaped as `task.reward` says, where it has one (sim)."""
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
    truncate: bool = False
    """The episode ends here without reaching a terminal state (a person's failure verdict on a
    demonstration): no bootstrap cut."""


class Reward(ABC):
    """Scores one step."""

    needs_labels: bool = False
    """True for a source that waits on a person's labels: the session needs a teleop device."""

    def check(self, obs_spec: DictSpec) -> None:  # noqa: B027 (most sources read no observation)
        """Raise ConfigError before any step if the robot's observations cannot feed this source."""

    @abstractmethod
    def __call__(self, ctx: RewardContext) -> RewardOutput: ...


REWARDS: Registry[type[Reward]] = Registry("reward", entry_point_group="robot_rl.rewards")


@REWARDS.register("task_rule")
class TaskRuleReward(Reward):
    """The task's own rule: its reward (sparse or dense per `task.reward`), ending on success."""

    def __call__(self, ctx: RewardContext) -> RewardOutput:
        if ctx.task_success is None or ctx.task_reward is None:
            raise ConfigError("this robot has no task rule for rewards: use reward=human_label "
                              "or reward=classifier")
        return RewardOutput(float(ctx.task_reward), ctx.task_success, ctx.task_success)


@REWARDS.register("human_label")
class HumanLabelReward(Reward):
    """A person presses success (reward 1, episode ends) or failure (reward 0, episode ends)."""

    needs_labels = True

    def __call__(self, ctx: RewardContext) -> RewardOutput:
        if ctx.label is None:
            return RewardOutput(0.0, False, False)
        return RewardOutput(float(ctx.label), ctx.label, True)


@REWARDS.register("classifier")
class ClassifierReward(Reward):
    """A learned success classifier on camera frames; success above `threshold` ends the episode."""

    def __init__(self, path: str | Path, threshold: float = 0.5) -> None:
        from policies.reward_classifier import SuccessClassifier  # torch: only for this source

        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"classifier threshold must be in (0, 1), got {threshold}")
        self.classifier = SuccessClassifier.load(Path(path))
        self.threshold = threshold

    def check(self, obs_spec: DictSpec) -> None:
        for cam, cam_spec in self.classifier.spec.items():
            if cam not in obs_spec or (obs_spec[cam].shape, obs_spec[cam].dtype) != (
                    cam_spec.shape, cam_spec.dtype):
                got = obs_spec[cam] if cam in obs_spec else "no such field"
                raise ConfigError(
                    f"the reward classifier reads camera {cam!r} as {cam_spec}; the robot gives "
                    f"{got}: set robot.cameras and robot.image_size to match, or retrain it")

    def __call__(self, ctx: RewardContext) -> RewardOutput:
        prob = float(self.classifier.probability({k: v[None] for k, v in ctx.next_obs.items()})[0])
        success = prob > self.threshold
        return RewardOutput(float(success), success, success)
