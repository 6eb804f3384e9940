"""The edge loop: the actor's episodes on a hal robot, a local or remote policy, every step
streamed.

The control loop (`runtime.actor`, the same step as the session's) is a coroutine on the link's
event loop, the loop that also receives the
gateway's actions and control: a remote action reaches it with no thread hand-off, and the
link's callbacks (hold on a dead link, control from the gateway) run only between two of its
awaits, never during a robot call, so the robot only ever sees one caller at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import warnings
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig

from comms.adaptive import propose_placement
from comms.connection import DEFAULT_TIMINGS, LinkTimings
from comms.edge_link import EdgeLink
from comms.edge_weights import EdgeWeights
from comms.messages import Control, spec_digest
from comms.spool import Spool
from hal import task_outcomes
from robot_rl.core import ConfigError, DictSpec, Observation, Registry, Source, SpecError
from robot_rl.core.durable import write_file_atomic
from robot_rl.runtime.actor import ActionSource, Actor, ActorConfig, PolicySource
from robot_rl.runtime.adapter import adapted
from robot_rl.runtime.build import (
    build_adapter,
    build_algorithm,
    build_reward,
    build_robot,
    build_teleop,
    require_labels_source,
)

if TYPE_CHECKING:
    from robot_rl.runtime.frozen_features import FeatureObserver

log = logging.getLogger(__name__)


class EdgeSource(ActionSource):
    """The edge's action source: waits while the gateway pauses the robot, ends the run on a
    fatal link error, then asks the policy (local, or served by the gateway)."""

    syncs_weights: bool  # whether the policy runs here, on weights synced from the gateway

    def __init__(self, agent: EdgeAgent) -> None:
        self.agent = agent

    async def act(self, obs: Observation) -> np.ndarray | None:
        await self.agent.ready()
        return await self.fetch(obs)

    @abstractmethod
    async def fetch(self, obs: Observation) -> np.ndarray | None: ...


ACTION_SOURCES: Registry[type[EdgeSource]] = Registry("edge policy")


@ACTION_SOURCES.register("local")
class LocalPolicy(EdgeSource):
    """The configured algorithm's policy, run on the edge with the newest weights the gateway
    synced, swapped in between two steps (so each transition names the version it acted with);
    while the link is down it acts with the last weights it has."""

    syncs_weights = True

    def __init__(self, agent: EdgeAgent) -> None:
        super().__init__(agent)
        spec = agent.actor_spec
        self.policy = PolicySource(build_algorithm(agent.cfg, spec, agent.robot.action_spec)
                                   .policy, agent.robot.action_spec, np.random.default_rng())
        self.step_s: float | None = None  # smoothed time the policy takes per step

    async def fetch(self, obs: Observation) -> np.ndarray | None:
        weights = self.agent.link.poll_weights()  # a step boundary: swap, never mid-step
        if weights is not None:
            with warnings.catch_warnings():  # read-only arrays: the policy copies them in
                warnings.filterwarnings("ignore", "The given NumPy array is not writable")
                try:
                    self.policy.policy.set_weights(weights.tensors, weights.version)
                except SpecError as exc:  # all or none: the robot keeps its weights, and stops
                    raise ConfigError(
                        f"the gateway's policy does not fit this edge's ({exc}); start the edge "
                        "with the session's algo settings (algo=..., algo.params...)") from None
            self.agent.stats["weights_applied"] += 1
        start = time.perf_counter()
        action = await self.policy.act(obs)
        took = time.perf_counter() - start
        self.step_s = took if self.step_s is None else 0.9 * self.step_s + 0.1 * took
        self.version = self.policy.version
        return action


@ACTION_SOURCES.register("remote")
class RemotePolicy(EdgeSource):
    """The gateway's served policy; a missed per-step deadline yields None (the robot holds).
    It needs no weights at the edge."""

    syncs_weights = False

    def __init__(self, agent: EdgeAgent) -> None:
        super().__init__(agent)
        self.link, self.robot_id, self.deadline = agent.link, agent.stream, agent.options.deadline

    async def fetch(self, obs: Observation) -> np.ndarray | None:
        response = await self.link.act(self.robot_id, obs, self.deadline)
        if response is None:  # no action in time: the safety layer's hold is the step
            self.agent.stats["held_deadline"] += 1
            return None
        self.version = response.policy_version
        return np.array(response.action)


@dataclass(frozen=True)
class EdgeOptions:
    """How the edge reaches its gateway and drives its robot."""

    gateway_url: str
    spool_dir: Path
    policy: str = "local"
    deadline: float = 0.1  # seconds per remote action
    episodes: int | None = None  # stop after this many episodes (None: run until stopped)
    pace: bool = True  # keep real time at robot.control_hz
    drain: float = 30.0  # seconds to wait for the last acks before exiting
    connect_wait: float = 10.0  # seconds to wait for the gateway before the first step
    ssl_context: Any = None
    timings: LinkTimings = DEFAULT_TIMINGS


class EdgeAgent:
    """Runs episodes on one robot and streams each transition, durably, to the gateway."""

    def __init__(self, cfg: DictConfig, token: bytes, options: EdgeOptions,
                 say: Callable[[str], None] = lambda line: None) -> None:
        self.cfg, self.options, self.say = cfg, options, say
        self._link_up: bool | None = None  # what was last said of the link
        self.arm, self.robot = build_robot(cfg)
        raw_spec = self.arm.observation_spec
        observer = edge_observer(cfg, raw_spec)
        adapter = build_adapter(cfg, observer.spec if observer else raw_spec)
        self.actor_spec = adapter.spec  # what the gateway's learner takes
        self.actor = Actor(self.robot, build_reward(cfg, raw_spec), ActorConfig(
            max_steps=int(cfg.task.max_steps), task_reward=cfg.task.reward,
            period=1.0 / float(cfg.robot.control_hz) if options.pace else 0.0),
            outcomes=task_outcomes(self.arm), observe=adapted(observer, adapter),
            sleep=asyncio.sleep)
        self.stream = str(cfg.robot.id)
        self.stats: Counter[str] = Counter()
        self._running = asyncio.Event()  # cleared while the gateway has paused this robot
        self._running.set()
        self._counter_file = options.spool_dir / "episodes.json"
        self.spool = Spool(options.spool_dir / "transitions.spool")
        digest = spec_digest(self.actor_spec, self.robot.action_spec)
        remote = options.policy == "remote"
        source = ACTION_SOURCES.get(options.policy)
        self.link = EdgeLink(
            options.gateway_url, token, self.stream, digest, self.spool, streams=[self.stream],
            ssl_context=options.ssl_context, on_hold=self._hold if remote else None,
            on_control=self._control, timings=options.timings,
            weights=EdgeWeights() if source.syncs_weights else None,
        )
        self.source = source(self)
        self._placement = ""  # the last placement proposal said
        self._controls = {
            "estop": lambda reason: self.robot.estop(reason or "e-stop from the gateway"),
            "release": lambda reason: self.robot.release(),
            "pause": self._pause,
            "resume": lambda reason: self._running.set(),
            "reset": self._request_reset,
        }
        self.teleop = self.actor.teleop = build_teleop(cfg, self.arm)  # last: it may hold a tty
        try:
            require_labels_source(cfg, self.actor.reward, self.teleop)
        except ConfigError:
            if self.teleop is not None:
                self.teleop.close()
            raise

    # -- link callbacks (on the loop, between two awaits of the control loop) ----------------------
    def _hold(self, why: str) -> None:
        log.warning("edge %s: holding the robot: %s", self.stream, why)
        self.stats["held_link_down"] += 1
        self.robot.hold()

    def _control(self, control: Control) -> None:
        log.warning("edge %s: control %s (%s)", self.stream, control.command, control.reason)
        self._controls[control.command](control.reason)

    def _pause(self, reason: str) -> None:
        self._running.clear()
        self.robot.hold()

    def _request_reset(self, reason: str) -> None:
        self.actor.request_truncation()

    # -- episode counter --------------------------------------------------------------------------
    def _next_episode_id(self) -> int:
        """A per-robot episode number that survives restarts of the edge."""
        current = 0
        if self._counter_file.exists():
            current = json.loads(self._counter_file.read_text())["next"]
        write_file_atomic(self._counter_file, json.dumps({"next": current + 1}).encode())
        return int(current)

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> Counter[str]:
        self.link.start()
        try:
            self.link.run(self._drive())
            if not self.link.wait_acked(self.options.drain):
                log.warning("edge %s: %d transitions still unacked; they stay in the spool for "
                            "the next start", self.stream, self.spool.pending_count())
        finally:
            self.link.close()
            self.spool.close()
        return self.stats

    async def _drive(self) -> None:
        """The robot's whole life on the link's loop: connect, run the episodes, disconnect."""
        self.robot.connect()
        try:
            await self._wait_connected(self.options.connect_wait)
            self._say_link()
            done = 0
            while self.options.episodes is None or done < self.options.episodes:
                await self._episode()
                done += 1
        finally:
            self.robot.disconnect()
            if self.teleop is not None:
                self.teleop.close()

    def _check_link(self) -> None:
        if self.link.fatal_error is not None:
            raise self.link.fatal_error

    async def ready(self) -> None:
        """Before each step: a fatal link error ends the run; a pause waits for resume."""
        self._check_link()
        await self._running.wait()

    async def _wait_connected(self, timeout: float) -> None:
        """Give the link a moment to come up before the first step, so a remote policy can act."""
        deadline = time.monotonic() + timeout
        while not self.link.connected and time.monotonic() < deadline:
            self._check_link()
            await asyncio.sleep(0.02)

    async def _wait_released(self) -> None:
        """An engaged e-stop or a pause blocks the next reset until the operator lifts it."""
        while self.robot.estopped or not self._running.is_set():
            self._check_link()
            await asyncio.sleep(0.05)

    async def _episode(self) -> None:
        """One episode by the actor on this loop, each transition durable in the spool (and on
        its way to the gateway) before the next step."""
        episode_id = self._next_episode_id()
        left_open = self.spool.episode_open(self.stream)  # a crash interrupted the last episode
        await self._wait_released()
        ret, steps, held = 0.0, 0, 0
        async for transition in self.actor.episode(self.source, episode_id):
            ends = {0: self.actor.success} if transition.done else None
            # durable on return; the disk write runs off the loop so heartbeats keep flowing
            await asyncio.to_thread(self.link.publish, self.stream, [transition], ends,
                                    False if left_open else None)
            left_open = False
            self.stats["steps"] += 1
            ret, steps = ret + transition.reward, steps + 1
            held += transition.source is Source.HOLD
            self._say_link()
        self.stats["episodes"] += 1
        self._propose_placement()
        self.say(f"edge {self.stream}: episode {episode_id}: return {ret:.2f}, "
                 f"{'success' if self.actor.success else 'no success'}, {steps} steps, {held} "
                 f"held; {self.spool.pending_count()} transitions not yet acked")

    def _propose_placement(self) -> None:
        """Log where the policy should run (edge or cloud) when that proposal changes."""
        current = self.link.weights.current if self.link.weights is not None else None
        step_s = getattr(self.source, "step_s", None)
        if current is None or step_s is None:
            return
        obs_bytes = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize
                        for s in self.actor_spec.fields.values())
        proposal = propose_placement(current.nbytes, step_s, None,
                                     1.0 / float(self.cfg.robot.control_hz), self.link.meter,
                                     obs_bytes)
        if proposal.where != self._placement:
            self._placement = proposal.where
            log.info("edge %s: inference should run on the %s: %s", self.stream,
                     proposal.where, proposal.why)

    def _say_link(self) -> None:
        """A line when the link comes up or goes down (checked between steps: no callback)."""
        up = self.link.connected
        if up == self._link_up:
            return
        if up:
            self.say(f"edge {self.stream}: connected to {self.options.gateway_url}")
        elif self._link_up:
            what = ("holding the robot until it returns" if self.options.policy == "remote" else
                    "acting on the last weights it has")
            self.say(f"edge {self.stream}: link to the gateway down, {what}; every step waits "
                     "in the spool and is sent when it returns")
        self._link_up = up


def edge_observer(cfg: DictConfig, raw_spec: DictSpec) -> FeatureObserver | None:
    """Frozen camera features at the edge, from the run's encoder (`algo.features.weights`)."""
    if not cfg.algo.features.cameras:
        return None
    from robot_rl.runtime.frozen_features import FeatureObserver  # torch and zarr: only here

    if not cfg.algo.features.weights:
        raise ConfigError("an edge with frozen camera features needs the run's encoder: set "
                          "algo.features.weights=<run>/encoder.npz")
    observer = FeatureObserver(cfg.algo.features, raw_spec)
    observer.load(Path(cfg.algo.features.weights))
    return observer
