"""A first, in-process session: one robot acting, a learner updating between its steps.

The actor (`runtime.actor`) runs the control steps; the session stores each episode and calls
the learner between two steps, never inside one. Later issues move actor and learner into
separate Ray processes; the run directory layout, the checkpoint contents and the buffer stay.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from buffer import ReplayBuffer
from hal import Teleop, task_outcomes
from policies.rlpd import intervention_rate
from robot_rl.core import Batch, DictSpec, Episode, SafetyError, is_demo_side
from robot_rl.runtime.actor import Actor, ActorConfig, PolicySource, steps
from robot_rl.runtime.build import (
    build_algorithm,
    build_buffer,
    build_replay,
    build_reward,
    build_robot,
    build_sampler,
    build_teleop,
    demo_fraction,
    require_labels_source,
)
from robot_rl.runtime.checkpoint import load_latest, save_checkpoint
from robot_rl.runtime.frozen_features import FeatureObserver
from robot_rl.runtime.learner import Learner
from robot_rl.runtime.run_dir import RunDir

log = logging.getLogger(__name__)
PLAIN_REPORT_S = 10.0  # without a terminal: a progress line this often


@dataclass
class Counters:
    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    policy_version: int = 0


class Session:
    """Runs one robot and one learner until `run.env_steps` steps are stored."""

    def __init__(self, cfg: DictConfig, run: RunDir, teleop: Teleop | None = None) -> None:
        self.cfg = cfg
        self.run = run
        self.arm, self.robot = build_robot(cfg)
        raw_spec = self.arm.observation_spec
        self.observer = (FeatureObserver(cfg.algo.features, raw_spec)
                         if cfg.algo.features.cameras else None)
        self.obs_spec = self.observer.spec if self.observer else raw_spec
        self.action_spec = self.arm.action_spec
        self.algo = build_algorithm(cfg, self.obs_spec, self.arm.action_spec)
        self.reward = build_reward(cfg, raw_spec)  # rewards see the raw frames
        build_sampler(cfg)  # a bad sampler is refused now, before the run directory is written
        self.rng = np.random.default_rng(cfg.seed)
        self.counters = Counters()
        self.recent: list[tuple[float, bool]] = []
        self._last_ckpt_step = 0
        self.demos: ReplayBuffer | None = None
        self.teleop = teleop

    # -- persistence -----------------------------------------------------------------------------
    def _restore(self) -> None:
        state = load_latest(self.run.checkpoints)
        self.counters.env_steps = len(self.buffer)
        self.counters.episodes = self.buffer.num_episodes
        if state is None:
            return
        self.algo.load_state_dict(state["algorithm"])
        self.rng.bit_generator.state = state["numpy_rng"]
        c = state["counters"]
        self.counters.updates = int(c["updates"])
        self.counters.policy_version = int(c["policy_version"])
        self.algo.policy.version = self.counters.policy_version
        self._last_ckpt_step = int(c["env_steps"])
        self.robot.events.update(state.get("safety", {}))  # the safety/* counts go on, not from 0
        log.info("resumed from checkpoint at %d env steps (%d stored)", c["env_steps"],
                 len(self.buffer))

    def checkpoint(self) -> None:
        state = {
            "algorithm": self.algo.state_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "counters": vars(self.counters).copy(),
            "buffer_commit": {"steps": len(self.buffer), "episodes": self.buffer.num_episodes},
            "safety": dict(self.robot.events),
        }
        save_checkpoint(self.run.checkpoints, self.counters.env_steps, state,
                        keep=self.cfg.run.keep_checkpoints)
        self._last_ckpt_step = self.counters.env_steps

    # -- learning --------------------------------------------------------------------------------
    def batches(self) -> Iterator[Batch]:
        """The learner's batches: uniform online rows; with a demo fraction (RLPD), mixed with the
        demo side (`buffer.mixing.DemoMix`)."""
        while True:
            yield self.replay.sample(self.cfg.learner.batch_size, self.rng)

    def _open_demo_side(self, specs: tuple[DictSpec, Any]) -> ReplayBuffer:
        """<run>/demos; with frozen features, <run>/demos_features built once from its frames."""
        returns = {"n_step": self.cfg.buffer.n_step, "gamma": self.algo.config.gamma}
        if self.observer is None:
            return ReplayBuffer(self.run.demos, *specs, **returns)
        fresh = not self.run.feature_demos.exists()
        demos = ReplayBuffer(self.run.feature_demos, *specs, **returns)
        if fresh and self.run.demos.exists():
            self.observer.featurize_demos(self.run.demos, demos)
        return demos

    # -- acting ----------------------------------------------------------------------------------
    def observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation as stored and acted on: with frozen camera features where configured."""
        return self.observer(raw) if self.observer else raw

    def _actor(self) -> Actor:
        cfg = self.cfg
        realtime = self.teleop is not None and self.teleop.realtime  # a person keeps up
        return Actor(self.robot, self.reward, ActorConfig(
            max_steps=cfg.task.max_steps, task_reward=cfg.task.reward,
            period=1.0 / cfg.robot.control_hz if realtime else 0.0),
            outcomes=task_outcomes(self.arm), teleop=self.teleop,
            observe=self.observer)

    def _run_episode(self, actor: Actor, source: PolicySource, learner: Learner,
                     writer: Any) -> Episode:
        """One episode by the actor, the learner updating after each of its steps once the
        buffer holds `learner.warmup_steps`; stored whole, its demo-side steps on the demo side."""
        cfg = self.cfg
        episode = Episode(self.counters.episodes, self.robot.robot_id, cfg.task.name)
        metrics: dict[str, float] = {}
        for transition in steps(actor.episode(source, episode.episode_id)):
            episode.transitions.append(transition)
            self.counters.env_steps += 1
            if len(self.buffer) >= cfg.learner.warmup_steps:
                metrics = learner.update(cfg.learner.updates_per_step)
                self.counters.updates = self.counters.policy_version = learner.version
        episode.success = actor.success
        self.buffer.add_episode(episode)
        demo_side = [t for t in episode.transitions if is_demo_side(t.source, t.intervened)]
        if demo_side and self.demos is not None:  # RLPD: takeovers also feed the demo side
            self.demos.add_episode(Episode(episode.episode_id, episode.robot_id, episode.task,
                                           demo_side, episode.success))
        self.counters.episodes += 1
        self._log(episode, metrics, writer, actor.task_success)
        return episode

    def _log(self, episode: Episode, metrics: dict[str, float], writer: Any,
             task_success: bool) -> None:
        step = self.counters.env_steps
        self.recent = (self.recent + [(episode.total_reward, episode.success)])[-20:]
        writer.add_scalar("episode/return", episode.total_reward, step)
        writer.add_scalar("episode/success", float(episode.success), step)
        writer.add_scalar("episode/task_success", float(task_success), step)  # the rule's verdict
        writer.add_scalar("episode/length", episode.length, step)
        writer.add_scalar("episode/interventions", episode.interventions, step)
        writer.add_scalar("episode/intervention_rate", intervention_rate(episode), step)
        for key, value in metrics.items():
            writer.add_scalar(f"learner/{key}", value, step)
        for kind, count in self.robot.events.items():
            writer.add_scalar(f"safety/{kind}", count, step)

    def success_rate_last_20(self) -> float:
        return float(np.mean([s for _, s in self.recent])) if self.recent else 0.0

    # -- the loop --------------------------------------------------------------------------------
    def run_until_budget(self) -> Counters:
        """Act and learn until `run.env_steps` are stored, with the configured teleop device (if
        none was given) held open for the run and released after it, whatever happens."""
        if self.teleop is None:
            self.teleop = build_teleop(self.cfg, self.arm)
        require_labels_source(self.cfg, self.reward, self.teleop)
        try:
            return self._run()
        finally:
            if self.teleop is not None:
                self.teleop.close()

    def _run(self) -> Counters:
        import torch
        from torch.utils.tensorboard import SummaryWriter  # slow import, only when training

        torch.set_num_threads(self.cfg.learner.threads)
        budget = self.cfg.run.env_steps
        self.robot.connect()
        if self.observer is not None:
            self.observer.prepare(self.run)
        specs = (self.obs_spec, self.robot.action_spec)
        gamma = self.algo.config.gamma
        self.buffer = build_buffer(self.cfg, self.run.buffer, *specs, gamma)
        fraction = demo_fraction(self.algo)
        self.demos = self._open_demo_side(specs) if fraction > 0 else None
        self.replay = build_replay(self.cfg, self.buffer, self.demos, gamma, fraction)
        self._restore()
        actor, learner = self._actor(), Learner(self.algo, self.batches(), self.counters.updates)
        source = PolicySource(self.algo.policy, self.robot.action_spec, self.rng,
                              exploring=lambda: len(self.buffer) < self.cfg.learner.warmup_steps)
        writer = SummaryWriter(str(self.run.tensorboard))
        bar = tqdm(total=budget, initial=min(self.counters.env_steps, budget), unit=" steps",
                   disable=not sys.stderr.isatty(), dynamic_ncols=True)
        t0, u0 = time.monotonic(), self.counters.updates
        said = t0
        try:
            while self.counters.env_steps < budget:
                with logging_redirect_tqdm():  # warnings print above the bar, not through it
                    episode = self._run_episode(actor, source, learner, writer)
                bar.update(min(self.counters.env_steps, budget) - bar.n)
                ups = (self.counters.updates - u0) / max(time.monotonic() - t0, 1e-6)
                stats = {"ep": self.counters.episodes, "ret": f"{episode.total_reward:.2f}",
                         "succ20": f"{self.success_rate_last_20():.2f}", "upd/s": f"{ups:.0f}"}
                bar.set_postfix(stats)
                if bar.disable and time.monotonic() - said >= PLAIN_REPORT_S:  # not a terminal
                    said = time.monotonic()
                    print(f"steps {self.counters.env_steps}/{budget} " +
                          " ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
                if self.robot.estopped:
                    self.checkpoint()
                    raise SafetyError(
                        f"stopped by the e-stop at the teleop after {self.counters.env_steps} "
                        "steps: the robot holds, the buffer and a checkpoint are saved; run the "
                        "same command again to resume")
                if self.counters.env_steps - self._last_ckpt_step >= self.cfg.run.checkpoint_every:
                    self.checkpoint()
            self.checkpoint()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the learner's progress is kept too
            self.checkpoint()
            raise
        finally:
            bar.close()
            writer.close()
            self.robot.disconnect()
            self.replay.close()
        return self.counters
