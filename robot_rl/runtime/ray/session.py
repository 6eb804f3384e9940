"""The session on Ray: the buffer's writer (with the gateway for edge robots), the learner and one
env worker per robot as actors, this process watching them.

`runtime.mode=async`: robots act and the learner trains at once, weights flow every
`runtime.sync_every` updates; `sync`: the same parts in lockstep (an episode per robot, then its
updates, then the weights), the debugging twin and the benchmark's baseline. A robot a person
drives from this machine (`teleop=keyboard`, a gamepad, ...) runs its env worker in this process,
with the device the session opened.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import ray
from omegaconf import DictConfig, OmegaConf

from hal import Teleop
from robot_rl.core import SafetyError, SessionError
from robot_rl.runtime.build import (
    build_algorithm,
    build_reward,
    build_robot,
    build_teleop,
    check_replay,
    demo_fraction,
    demo_side_path,
    require_labels_source,
    session_robots,
    session_specs,
)
from robot_rl.runtime.checkpoint import load_latest
from robot_rl.runtime.gateway import check_gateway, run_specs
from robot_rl.runtime.live_display import LiveDisplay
from robot_rl.runtime.ray.actors import EnvWorkerActor, LearnerActor, WriterActor
from robot_rl.runtime.ray.cluster import ray_for_session
from robot_rl.runtime.ray.robots import LocalRobot, RemoteRobot, RobotHandle
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session_writer import EpisodeSummary

log = logging.getLogger(__name__)
WATCH_S = 0.5  # how often this process samples the parts


def open_robot_devices(cfg: DictConfig) -> Teleop | None:
    """Refuse now, before anything runs, what the robot's env worker would refuse (its robot,
    its reward source and the cameras it reads, its teleop device, a reward that needs labels);
    a device a person drives from this machine stays open for its worker in this process."""
    arm, _ = build_robot(cfg)
    reward = build_reward(cfg, arm.observation_spec)
    teleop = build_teleop(cfg, arm)
    try:
        require_labels_source(cfg, reward, teleop)
    except BaseException:
        if teleop is not None:
            teleop.close()
        raise
    if teleop is not None and not teleop.realtime:
        teleop.close()  # the worker builds its own, next to its robot
        return None
    return teleop


class RaySession:
    """Runs the configured robots, edge robots and one learner until `run.env_steps` are stored."""

    def __init__(self, cfg: DictConfig, run: RunDir) -> None:
        self.cfg, self.run = cfg, run
        self.robots = session_robots(cfg)
        # what this session's robots give (checked against the buffer by `train`); with only edge
        # robots, what the run's buffer holds, which they must speak
        self.obs_spec, self.action_spec = (session_specs(cfg) if self.robots
                                           else run_specs(cfg, run))
        algo = build_algorithm(cfg, self.obs_spec, self.action_spec)  # config errors: now
        check_replay(cfg, demo_fraction(algo))
        if cfg.gateway.port is not None:
            check_gateway(cfg)
        self.devices: dict[str, Teleop] = {}  # robot -> the device a person drives it with here
        for robot_id, robot_cfg in self.robots.items():
            device = open_robot_devices(robot_cfg)
            if device is not None:
                self.devices[robot_id] = device
        self.gamma, self.with_demos = algo.config.gamma, demo_fraction(algo) > 0
        self.mode = str(cfg.runtime.mode)
        state = load_latest(run.checkpoints) or {}
        counters = state.get("counters", {})
        self.elapsed_base = float(counters.get("elapsed_s", 0.0))
        self.safety_base = _per_robot(state.get("safety", {}), next(iter(self.robots), ""))
        self.recent: list[EpisodeSummary] = []
        self.seen = 0
        self.edge_port: int | None = None
        self.handles: dict[str, RobotHandle] = {}
        self._stopping = threading.Event()
        self._prepare_features()

    # -- start and stop ----------------------------------------------------------------------------
    def run_until_budget(self) -> dict[str, Any]:
        address = self.cfg.cluster.address
        log_dir = self.run.root / "logs"
        try:
            with ray_for_session(None if address is None else str(address), log_dir):
                return self._run()
        finally:
            self.close_devices()

    def close_devices(self) -> None:
        """Release the devices people drive from here (a terminal's mode, a reader thread)."""
        for device in self.devices.values():
            device.close()
        self.devices.clear()

    def _prepare_features(self) -> None:
        """Frozen camera features: the encoder (loaded, or pretrained on the run's demos) and the
        demo side with features, made once here before any worker starts."""
        if not self.cfg.algo.features.cameras:
            return
        from robot_rl.runtime.frozen_features import FeatureObserver

        robot, _ = build_robot(next(iter(self.robots.values()), self.cfg))
        observer = FeatureObserver(self.cfg.algo.features, robot.observation_spec)
        observer.prepare(self.run)
        featured = self.run.feature_demos
        if self.with_demos and not featured.exists() and self.run.demos.exists():
            from buffer import ReplayBuffer

            with ReplayBuffer(featured, self.obs_spec, self.action_spec) as into:
                observer.featurize_demos(self.run.demos, into)

    def _start(self) -> None:
        self.handles = {}
        cfg = OmegaConf.to_container(self.cfg, resolve=True)
        demo_side = str(demo_side_path(self.cfg, self.run)) if self.with_demos else None
        self.writer = WriterActor.remote(cfg, self.obs_spec, self.action_spec, demo_side,
                                         self.gamma)
        ray.get(self.writer.stored.remote())  # the buffer exists before the learner reads it
        self.learner = LearnerActor.remote(cfg, self.obs_spec, self.action_spec)
        start = ray.get(self.learner.start.remote())
        gated = self.mode == "async"
        for robot_id, robot_cfg in self.robots.items():
            safety = self.safety_base.get(robot_id, {})
            if robot_id in self.devices:
                self.handles[robot_id] = LocalRobot(robot_cfg, self.writer, self.learner, start,
                                                    gated, safety, self.devices[robot_id])
            else:
                self.handles[robot_id] = RemoteRobot(EnvWorkerActor.remote(
                    OmegaConf.to_container(robot_cfg, resolve=True), self.writer, self.learner,
                    start, gated, safety))
        if self.cfg.gateway.port is not None:
            self.edge_port = int(ray.get(self.writer.start_gateway.remote(self.learner)))
            scheme = "wss" if self.cfg.gateway.certfile else "ws"
            print(f"edge robots: robot-rl edge --gateway {scheme}://{self.cfg.gateway.host}:"
                  f"{self.edge_port} ... (or robot-rl sim-server)", flush=True)
        for handle in self.handles.values():
            handle.status()  # every robot is up (connected, its policy built)

    def _stop(self, runs: dict[str, Any], learner_run: Any) -> None:
        """Robots end their episode (committed) and hold; the learner stops and checkpoints."""
        for handle in self.handles.values():
            handle.stop()
        self.learner.stop.remote()
        for pending in runs.values():
            pending.result()
        if learner_run is not None:
            ray.get(learner_run)
        self.checkpoint()
        self.last = self.sample()
        for handle in self.handles.values():
            handle.close()
        ray.get([self.learner.close.remote(), self.writer.close.remote()])
        for actor in (self.learner, self.writer):
            ray.kill(actor)

    def request_stop(self) -> None:
        """End the session as if its budget were reached: robots finish their episode, the
        learner checkpoints (from any thread: an operator's page, a test)."""
        self._stopping.set()

    def elapsed(self) -> float:
        return self.elapsed_base + time.monotonic() - self.t0

    def checkpoint(self) -> int:
        safety = {robot_id: dict(Counter(counts)) for robot_id, counts in self.safety_base.items()}
        for robot_id, handle in self.handles.items():
            safety[robot_id] = handle.status()["safety"]
        session = {"elapsed_s": self.elapsed(), "safety": safety}
        return int(ray.get(self.learner.checkpoint.remote(session)))

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        self.t0 = time.monotonic()
        budget = int(self.cfg.run.env_steps)
        self.tb = SummaryWriter(str(self.run.tensorboard))
        display = LiveDisplay(self.run.root / "metrics.jsonl", f"{self.cfg.task.name} "
                              f"({self.mode})", budget)
        runs: dict[str, Any] = {}
        learner_run = None
        try:
            self._start()
            if self.mode == "async":
                learner_run = self.learner.run.remote()
                runs = {rid: h.run(budget) for rid, h in self.handles.items()}
                self._watch(runs, learner_run, display, budget)
            else:
                self._lockstep(display, budget)
            self._stop(runs, learner_run)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the parts, keep the learner
            if self.handles:
                self._stop(runs, learner_run)
            raise
        except ray.exceptions.RayError as exc:
            raise SessionError(f"a part of the session died ({_why(exc)}); every committed "
                               f"episode is in the buffer; logs in {self.run.root / 'logs'}; run "
                               "the same command again to resume") from None
        finally:
            display.close()
            self.tb.close()
        estopped = [rid for rid, p in runs.items() if p.done() and p.result() == "estop"]
        if estopped:
            raise SafetyError(
                f"stopped by the e-stop at the teleop of {', '.join(estopped)}: the robot holds, "
                "the buffer and a checkpoint are saved; run the same command again to resume")
        return self.last

    def _watch(self, runs: dict[str, Any], learner_run: Any, display: LiveDisplay,
               budget: int) -> None:
        last_ckpt = self.sample()["env_steps"]
        while True:
            time.sleep(WATCH_S)
            done, _ = ray.wait([learner_run], timeout=0)
            if done:
                ray.get(done)  # the learner trains until told to stop: raises what ended it
                raise SessionError("the learner stopped by itself; see its log in "
                                   f"{self.run.root / 'logs' / 'learner.log'}")
            sample = self.sample()
            display.show(sample)
            ended = [p for p in runs.values() if p.done()]
            for pending in ended:
                pending.result()  # raises what ended a robot early
            if (sample["env_steps"] >= budget or self._stopping.is_set()
                    or any(p.result() == "estop" for p in ended)):
                return
            if runs and len(ended) == len(runs) and self.edge_port is None:
                return
            if sample["env_steps"] - last_ckpt >= int(self.cfg.run.checkpoint_every):
                last_ckpt = self.checkpoint()

    def _lockstep(self, display: LiveDisplay, budget: int) -> None:
        """Each round: an episode on every robot, then the update-to-data ratio times their
        steps of updates (after warm-up), then every robot takes the new weights."""
        ratio, last_ckpt = float(self.cfg.learner.updates_per_step), self.sample()["env_steps"]
        while (sample := self.sample())["env_steps"] < budget and not self._stopping.is_set():
            started = time.monotonic()
            episodes = [h.run_episode() for h in self.handles.values()]
            results = [e.result() for e in episodes]
            generated = time.monotonic()
            steps = sum(length for length, _ in results)
            warm = sample["env_steps"] + steps >= int(self.cfg.learner.warmup_steps)
            updates = int(round(ratio * steps)) if warm else 0
            ray.get(self.learner.train.remote(updates))
            update = ray.get(self.learner.poll_weights.remote(-1))
            for handle in self.handles.values():
                handle.take_weights(update)
            display.show({**self.sample(), "round_generate_s": round(generated - started, 4),
                          "round_train_s": round(time.monotonic() - generated, 4),
                          "round_updates": updates})
            if any(h.status()["estopped"] for h in self.handles.values()):
                return
            if sample["env_steps"] - last_ckpt >= int(self.cfg.run.checkpoint_every):
                last_ckpt = self.checkpoint()

    # -- what is shown -----------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        """One row of the metrics log; new episodes also go to TensorBoard."""
        (steps, episodes), progress, edges = ray.get([
            self.writer.stored.remote(), self.learner.progress.remote(),
            self.writer.edge_status.remote()])
        statuses = [h.status() for h in self.handles.values()]
        new = ray.get(self.writer.episodes_since.remote(self.seen))
        self.seen += len(new)
        for ep in new:
            self._log_episode(ep)
        self.recent = (self.recent + new)[-20:]
        for key, value in progress["metrics"].items():
            self.tb.add_scalar(f"learner/{key}", value, steps)
        held = [s["version"] for s in statuses]
        latencies = [s["sync_latency_s"] for s in statuses]
        if edges.get("version", -1) >= 0 and edges["stats"].get("act_requests", 0):
            held.append(edges["version"])
            latencies.append(edges["sync_latency_s"])
        latencies = [x for x in latencies if x is not None]
        row = {
            "t": round(self.elapsed(), 3), "mode": self.mode, "env_steps": steps,
            "episodes": episodes, "buffer_steps": steps,
            "success_20": float(np.mean([e.success for e in self.recent])) if self.recent else 0.0,
            "intervention_rate_20": (float(np.mean([e.intervention_rate for e in self.recent]))
                                     if self.recent else 0.0),
            "updates": progress["updates"], "updates_per_s": round(progress["updates_per_s"], 2),
            "policy_version": progress["version"],
            "policy_lag": progress["version"] - min(held) if held else None,
            "sync_latency_s": round(max(latencies), 4) if latencies else None,
        }
        for key in ("updates_per_s", "policy_lag", "sync_latency_s"):
            if row[key] is not None:
                self.tb.add_scalar(f"session/{key}", row[key], steps)
        for status in statuses:
            for kind, count in status["safety"].items():
                self.tb.add_scalar(f"safety/{status['robot']}/{kind}", count, steps)
        return row

    def _log_episode(self, ep: EpisodeSummary) -> None:
        step = ep.stored_steps
        self.tb.add_scalar("episode/return", ep.total_reward, step)
        self.tb.add_scalar("episode/success", float(ep.success), step)
        self.tb.add_scalar("episode/length", ep.length, step)
        self.tb.add_scalar("episode/interventions", ep.interventions, step)
        self.tb.add_scalar("episode/intervention_rate", ep.intervention_rate, step)
        self.tb.add_scalar(f"robot/{ep.robot_id}/success", float(ep.success), step)


def _why(exc: ray.exceptions.RayError) -> str:
    """The error a Ray failure carries, in one line: the exception its task or actor raised (the
    last `SomethingError: ...` line of its report), else Ray's own first line."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        return f"{type(exc.cause).__name__}: {exc.cause}"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt): ", ln)]
    return (raised or lines or [type(exc).__name__])[-1 if raised else 0]


def _per_robot(saved: dict[str, Any], first: str) -> dict[str, dict[str, int]]:
    """A checkpoint's safety counts by robot (checkpoints of one-robot runs kept them flat)."""
    if saved and all(isinstance(v, (int, np.integer)) for v in saved.values()):
        return {first: {k: int(v) for k, v in saved.items()}}
    return {str(r): {k: int(v) for k, v in counts.items()} for r, counts in saved.items()}

