"""THE control step, written once: act → teleop → safety → reward → transition.

`Actor.episode` runs one episode of one robot and yields each transition as it happens; every
loop that drives a robot (the session, the edge, record-demos) consumes it, so the step cannot
drift between them. The step itself is synchronous; only the action fetch (and the wait that
paces the loop) is awaited, so an edge can await a remote action on its event loop with no
thread hand-off, while the session and record-demos drive the same coroutine with `steps`,
without an event loop. Learning never happens here: the caller does it between two steps.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from hal import ESTOP, SafeRobot, TaskOutcomeSource, Teleop, TeleopCommand
from policies import Policy
from policies.rewards import Reward, RewardContext
from robot_rl.core import ArraySpec, Observation, Source, Transition
from robot_rl.runtime.pacing import sleep_blocking, time_left

T = TypeVar("T")


class ActionSource(ABC):
    """Where a robot's actions come from; None means "no action in time": the robot holds."""

    version: int = 0
    """The policy version of the last action given."""

    @abstractmethod
    async def act(self, obs: Observation) -> np.ndarray | None: ...


class PolicySource(ActionSource):
    """A local policy's actions; uniform random ones while `exploring()` (a learner's warm-up)."""

    def __init__(self, policy: Policy, action_spec: ArraySpec, rng: np.random.Generator,
                 exploring: Callable[[], bool] = lambda: False) -> None:
        self.policy, self.spec, self.rng, self.exploring = policy, action_spec, rng, exploring

    async def act(self, obs: Observation) -> np.ndarray | None:
        self.version = self.policy.version
        if self.exploring():
            spec = self.spec
            return self.rng.uniform(spec.low, spec.high, spec.shape).astype(spec.dtype)
        return self.policy.act(obs)


class Nobody(ActionSource):
    """No policy at all: the robot holds unless the teleop drives it (recording demos)."""

    async def act(self, obs: Observation) -> np.ndarray | None:
        return None


class ScriptedDriver(Teleop):
    """A scripted expert as the teleop: it always has control (recording scripted demos)."""

    def __init__(self, act: Callable[[], np.ndarray]) -> None:
        self.act = act

    def read(self) -> TeleopCommand | None:
        return TeleopCommand(self.act(), takeover=True)


@dataclass(frozen=True)
class ActorConfig:
    """How the step loop runs: its length, the task reward's kind, its pace, who a takeover is."""

    max_steps: int
    task_reward: str = "dense"  # how the task rule scores: dense | sparse
    period: float = 0.0  # seconds per step (0: as fast as the robot goes)
    takeover_source: Source = Source.HUMAN  # DEMO where the teleop is the demonstrator
    record_holds: bool = True
    """False (recording demos): steps where nobody drives are neither yielded nor counted; an
    episode they end closes its last recorded step instead."""


class Actor:
    """One robot behind its safety layer, with its teleop, reward source and observation map."""

    def __init__(
        self, robot: SafeRobot, reward: Reward, config: ActorConfig, *,
        outcomes: TaskOutcomeSource | None = None, teleop: Teleop | None = None,
        observe: Callable[[Observation], Observation] | None = None,
        sleep: Callable[[float], Awaitable[None]] = sleep_blocking,
    ) -> None:
        self.robot, self.reward, self.config = robot, reward, config
        self.outcomes, self.teleop, self.sleep = outcomes, teleop, sleep
        self.observe = observe or (lambda obs: obs)
        self.success = False  # the reward source's verdict on the last step
        self.task_success = False  # the task rule's verdict on the last step (False without one)
        self._truncate = False

    def request_truncation(self) -> None:
        """End the running episode, truncated, at its next step (an operator asked for a reset)."""
        self._truncate = True

    async def episode(self, source: ActionSource, episode_id: int) -> AsyncIterator[Transition]:
        """Reset the robot and run one episode, yielding each transition once it is final."""
        cfg, pending = self.config, None
        self._truncate = False
        obs = self.observe(self.robot.reset())
        recorded = 0
        while recorded < cfg.max_steps:
            started = time.monotonic()
            proposal = await source.act(obs)
            # no await from here to the yield: callbacks on the caller's loop cannot interleave
            t = self.step(obs, proposal, source.version, episode_id, recorded)
            obs = t.next_obs
            if t.source is Source.HOLD and not cfg.record_holds:
                if t.done and (pending is not None or self.robot.estopped):
                    if pending is not None:  # a verdict or the e-stop closes what was recorded
                        yield replace(pending, terminated=t.terminated, truncated=t.truncated)
                    return
            else:
                recorded += 1
                if pending is not None:
                    yield pending
                pending = None if cfg.record_holds else t
                if cfg.record_holds:
                    yield t
                if t.done:
                    break
            await self.sleep(time_left(started, cfg.period))
        if pending is not None:
            yield pending

    def step(self, obs: Observation, proposal: np.ndarray | None, version: int,
             episode_id: int, step: int) -> Transition:
        """One control step from `obs`: the teleop may take over, the safety layer applies the
        action (or holds where there is none), the reward source scores what followed."""
        command = self.teleop.read() if self.teleop is not None else None
        if command is not None and ESTOP in command.buttons:
            self.robot.estop("e-stop pressed at the teleop")  # holds from this step on
        action, source = proposal, Source.POLICY
        if command is not None and command.takeover and command.action is not None:
            action, source = command.action, self.config.takeover_source  # the person's wins
        if action is None or self.robot.estopped:
            applied, source = self.robot.hold(), Source.HOLD
        else:
            applied = self.robot.send_action(action)
        raw_next = self.robot.get_observation()
        next_obs = self.observe(raw_next)
        outcome = self.outcomes.outcome() if self.outcomes is not None else None
        scored = self.reward(RewardContext(
            raw_next, task_reward=outcome.reward(self.config.task_reward) if outcome else None,
            task_success=outcome.success if outcome else None,
            label=command.label if command is not None else None))
        self.success, self.task_success = scored.success, bool(outcome and outcome.success)
        counts = self.config.record_holds or source is not Source.HOLD
        terminated = scored.terminate
        truncated = not terminated and (
            scored.truncate or (counts and step + 1 == self.config.max_steps)
            or not self.robot.health().ok or self._truncate)
        return Transition(
            obs=obs, action=applied, reward=scored.reward, next_obs=next_obs,
            terminated=terminated, truncated=truncated, source=source,
            intervened=source is Source.HUMAN, policy_version=version,
            robot_id=self.robot.robot_id, episode_id=episode_id, step=step,
            wall_time=time.time(), mono_time=time.monotonic(),
        )


def steps(episode: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an episode without an event loop; its action source and sleep must never suspend
    (a local policy, a blocking sleep), else this raises instead of blocking."""
    try:
        while True:
            advance = episode.__anext__()
            try:
                advance.send(None)
            except StopIteration as done:
                yield done.value
                continue
            except StopAsyncIteration:
                return
            # unwind the episode from where it waits, and say why
            advance.throw(RuntimeError("an episode driven without an event loop awaited "
                                       "something that suspends: run it on one (async for)"))
    finally:
        closing = episode.aclose()
        try:
            closing.send(None)
        except StopIteration:
            pass
