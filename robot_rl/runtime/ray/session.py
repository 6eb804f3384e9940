"""The session on Ray: the buffer's writer (with the gateway for edge robots), the learner and one
env worker per robot as actors, this process watching them.

`runtime.mode=async`: robots act and the learner trains at once, weights flow every
`runtime.sync_every` updates; `sync`: the same parts in lockstep (an episode per robot, then its
updates, then the weights), the debugging twin and the benchmark's baseline. A robot a person
drives from this machine (`teleop=keyboard`, a gamepad, ...) runs its env worker in this process,
with the device the session opened. A part that dies is restarted by Ray and watched by the
supervisor (`runtime.supervisor`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Any

import ray
from omegaconf import DictConfig, OmegaConf

from hal import Teleop
from hal.leases import FileLeaseStore, default_lease_dir
from hal.placement import node_resources
from hal.session_leases import SessionLeases
from robot_rl.core import ArraySpec, DictSpec, SafetyError, SessionError
from robot_rl.runtime.build import (
    build_adapter,
    build_algorithm,
    build_reward,
    build_robot,
    build_teleop,
    check_replay,
    demo_fraction,
    demo_side_path,
    feature_spec,
    placed_robot_config,
    plan_session,
    require_labels_source,
    session_inventory,
    session_robots,
    session_specs,
)
from robot_rl.runtime.checkpoint import load_latest
from robot_rl.runtime.env_worker import SessionStart
from robot_rl.runtime.gateway import check_gateway, run_specs
from robot_rl.runtime.ray.actors import EnvWorkerActor, LearnerActor, WriterActor, actor_name
from robot_rl.runtime.ray.cluster import ray_for_session
from robot_rl.runtime.ray.placement import actor_options, check_ray_resources, cluster_inventories
from robot_rl.runtime.ray.robots import LocalRobot, RemoteRobot, RobotHandle
from robot_rl.runtime.ray.session_view import SessionView
from robot_rl.runtime.ray.supervisor import Supervisor
from robot_rl.runtime.run_dir import RunDir

log = logging.getLogger(__name__)
WATCH_S = 0.5  # how often this process samples the parts


def open_robot_devices(cfg: DictConfig, learner: tuple[DictSpec, ArraySpec]) -> Teleop | None:
    """Refuse now, before anything runs, what the robot's env worker would refuse (its robot,
    observations and actions that do not fit the `learner`'s, its reward source and the cameras
    it reads, its teleop device, a reward that needs labels); a device a person drives from this
    machine stays open for its worker in this process."""
    arm, _ = build_robot(cfg)
    build_adapter(cfg, feature_spec(cfg, arm.observation_spec)).check(
        learner[0], arm.action_spec, learner[1])
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
            device = open_robot_devices(robot_cfg, (self.obs_spec, self.action_spec))
            if device is not None:
                self.devices[robot_id] = device
        self.gamma, self.with_demos = algo.config.gamma, demo_fraction(algo) > 0
        self.mode = str(cfg.runtime.mode)
        self.lease_store = FileLeaseStore(default_lease_dir())
        # on this machine, the hardware is checked now, before anything starts; on a cluster,
        # once joined, on each node
        self.inventory = session_inventory(cfg)
        self.placement = (plan_session(cfg, [self.inventory], self.lease_store)
                          if cfg.cluster.address is None else None)
        counters = (load_latest(run.checkpoints) or {}).get("counters", {})
        self.elapsed_base = float(counters.get("elapsed_s", 0.0))
        self.edge_port: int | None = None
        self.handles: dict[str, RobotHandle] = {}
        self.supervisor = Supervisor(int(cfg.runtime.max_restarts),
                                     float(cfg.runtime.restart_window_s),
                                     float(cfg.runtime.heartbeat_timeout_s))
        self._stopping = threading.Event()
        self._prepare_features()

    # -- start and stop ----------------------------------------------------------------------------
    def run_until_budget(self) -> dict[str, Any]:
        address = self.cfg.cluster.address
        try:
            with ray_for_session(None if address is None else str(address),
                                 self.run.root / "logs", node_resources(self.inventory)):
                if self.placement is None:  # a cluster: each node's units, taken there
                    self.placement = plan_session(
                        self.cfg, cluster_inventories(lambda: session_inventory(self.cfg)),
                        self.lease_store)
                check_ray_resources(self.placement)
                with SessionLeases(self.lease_store, self.placement.exclusive_units(),
                                   session=str(self.run.root)) as leases:
                    self.leases = leases
                    return self._run()
        finally:
            self.close_devices()

    def close_devices(self) -> None:
        """Release the devices people drive from here (a terminal's mode, a reader thread)."""
        for device in self.devices.values():
            device.close()
        self.devices.clear()

    def request_stop(self) -> None:
        """End the session as if its budget were reached: robots finish their episode, the
        learner checkpoints (from any thread: an operator's page, a test)."""
        self._stopping.set()

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
        cfg = OmegaConf.to_container(self.cfg, resolve=True)
        root = str(self.run.root)
        demo_side = str(demo_side_path(self.cfg, self.run)) if self.with_demos else None
        session = f"{os.getpid()}@{self.t0}"
        self.writer = WriterActor.options(name=actor_name(root, "writer")).remote(
            cfg, self.obs_spec, self.action_spec, demo_side, self.gamma, session)
        self.edge_port = ray.get(self.writer.edge_port.remote())  # the buffer exists now
        stored = ray.get(self.writer.stored_when_opened.remote())
        placement = self.placement
        assert placement is not None
        self.learner = LearnerActor.options(
            name=actor_name(root, "learner"), **actor_options(placement.learner)).remote(
            cfg, self.obs_spec, self.action_spec)
        # edges may stream while the learner starts up: those steps are this session's, and
        # its update-to-data ratio counts them (counted from the learner's own start, a learner
        # slower to start than the edges' episodes would never train on them)
        updates = ray.get(self.learner.updates.remote())
        self.start = start = SessionStart(stored, updates)
        ray.get(self.learner.continue_from.remote(start, updates))
        self.supervisor.watch("writer", self.writer, self._writer_lost)
        self.supervisor.watch("learner", self.learner, self._learner_lost)
        gated, first = self.mode == "async", next(iter(self.robots), "")
        for (robot_id, robot_cfg), placed in zip(self.robots.items(), placement.robots,
                                                 strict=True):
            robot_cfg = placed_robot_config(robot_cfg, placed)
            lease = self.leases.view(placed.unit.name) if placed.unit.exclusive else None
            if robot_id in self.devices:
                self.handles[robot_id] = LocalRobot(robot_cfg, self.writer, self.learner, start,
                                                    gated, first, self.devices[robot_id], lease)
                continue
            actor = EnvWorkerActor.options(**actor_options(placed)).remote(
                OmegaConf.to_container(robot_cfg, resolve=True), start, gated, first, lease)
            self.handles[robot_id] = RemoteRobot(actor)
            self.supervisor.watch(f"robot {robot_id}", actor,
                                  lambda: "its episode in progress (never committed)")
        if self.edge_port is not None:
            scheme = "wss" if self.cfg.gateway.certfile else "ws"
            print(f"edge robots: robot-rl edge --gateway {scheme}://{self.cfg.gateway.host}:"
                  f"{self.edge_port} ... (or robot-rl sim-server)", flush=True)
        for handle in self.handles.values():
            handle.ready()  # every robot is up (connected, its policy built)
        self._check_parts()

    def _writer_lost(self) -> str:
        steps, _ = ray.get(self.writer.stored.remote())
        return f"nothing committed: the buffer reopened at its last commit ({steps} steps)"

    def _check_parts(self) -> None:
        """The supervisor's round; a restarted part is brought back in step with the session."""
        for name in self.supervisor.check():
            if name == "writer":
                self.view.writer_restarted()
            elif name == "learner":  # its counter goes on above what the session has seen
                ray.get(self.learner.continue_from.remote(self.start,
                                                          int(self.view.last["updates"])))

    def _learner_lost(self) -> str:
        saved = (load_latest(self.run.checkpoints) or {}).get("counters", {})
        return (f"the updates since its checkpoint at {saved.get('env_steps', 0)} steps (it "
                "trains on from there; its versions never go back); nothing committed")

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
        self.view.show(self.sample(), self.supervisor, state="stopped")
        for handle in self.handles.values():
            handle.close()
        ray.get([self.learner.close.remote(), self.writer.close.remote()])
        for actor in (self.learner, self.writer):
            ray.kill(actor)

    def _abort(self) -> None:
        """Robots hold and disconnect, every part goes; what can still checkpoint does."""
        for handle in self.handles.values():
            handle.stop()
        try:
            ray.get(self.learner.checkpoint.remote({"elapsed_s": self.elapsed(), "safety": {}}),
                    timeout=30)
        except ray.exceptions.RayError as exc:
            log.warning("no checkpoint on the way out (%s)", _why(exc))
        for handle in self.handles.values():
            try:
                handle.close()
            except ray.exceptions.RayError:
                pass  # its process is gone: nothing left to hold
        for actor in (self.learner, self.writer):
            ray.kill(actor)
        self.view.show(self.view.last, self.supervisor, state="failed")

    def elapsed(self) -> float:
        return self.elapsed_base + time.monotonic() - self.t0

    def checkpoint(self) -> int:
        safety = {}
        for robot_id, handle in self.handles.items():
            try:
                safety[robot_id] = handle.status()["safety"]
            except ray.exceptions.RayError:  # restarting: its counts as last seen
                safety[robot_id] = self.view.robots.get(robot_id, {}).get("safety", {})
        session = {"elapsed_s": self.elapsed(), "safety": safety}
        return int(ray.get(self.learner.checkpoint.remote(session)))

    def sample(self) -> dict[str, Any]:
        return self.view.sample(self.writer, self.learner, self.handles, self.elapsed())

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> dict[str, Any]:
        self.t0 = time.monotonic()
        budget = int(self.cfg.run.env_steps)
        self.view = SessionView(self.run, self.mode, budget, f"{self.cfg.task.name} ({self.mode})")
        runs: dict[str, Any] = {}
        learner_run = None
        try:
            self._start()
            if self.mode == "async":
                learner_run = self.learner.run.remote()
                runs = {rid: h.run(budget) for rid, h in self.handles.items()}
                self._watch(runs, learner_run, budget)
            else:
                self._lockstep(budget)
            self._stop(runs, learner_run)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the parts, keep the learner
            if self.handles:
                self._stop(runs, learner_run)
            raise
        except SessionError:  # a part keeps dying: what still runs holds and goes
            self._abort()
            raise
        except ray.exceptions.RayError as exc:  # a part failed for good: the others hold
            if self.handles:
                self._abort()
            raise SessionError(f"a part of the session failed ({_why(exc)}); every committed "
                               f"episode is in the buffer; logs in {self.run.root / 'logs'}; run "
                               "the same command again to resume") from None
        finally:
            self.view.close()
        estopped = [rid for rid, p in runs.items() if p.done() and p.result() == "estop"]
        if estopped:
            raise SafetyError(
                f"stopped by the e-stop at the teleop of {', '.join(estopped)}: the robot holds, "
                "the buffer and a checkpoint are saved; run the same command again to resume")
        return self.view.last

    def _watch(self, runs: dict[str, Any], learner_run: Any, budget: int) -> None:
        last_ckpt = self.sample()["env_steps"]
        while True:
            time.sleep(WATCH_S)
            self._check_parts()
            if ray.wait([learner_run], timeout=0)[0]:
                ray.get(learner_run)  # the learner trains until told to stop: raises what ended it
                raise SessionError("the learner stopped by itself; see its log in "
                                   f"{self.run.root / 'logs' / 'learner.log'}")
            sample = self.sample()
            self.view.show(sample, self.supervisor)
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

    def _lockstep(self, budget: int) -> None:
        """Each round: an episode on every robot, then the update-to-data ratio times their
        steps of updates (after warm-up), then every robot takes the new weights."""
        ratio, last_ckpt = float(self.cfg.learner.updates_per_step), self.sample()["env_steps"]
        while (sample := self.sample())["env_steps"] < budget and not self._stopping.is_set():
            started = time.monotonic()
            results = [e.result() for e in [h.run_episode() for h in self.handles.values()]]
            generated = time.monotonic()
            steps = sum(length for length, _ in results)
            warm = sample["env_steps"] + steps >= int(self.cfg.learner.warmup_steps)
            updates = int(round(ratio * steps)) if warm else 0
            ray.get(self.learner.train.remote(updates))
            update = ray.get(self.learner.poll_weights.remote(-1))
            for handle in self.handles.values():
                handle.take_weights(update)
            self._check_parts()
            sample = self.sample()
            self.view.show({**sample, "round_generate_s": round(generated - started, 4),
                            "round_train_s": round(time.monotonic() - generated, 4),
                            "round_updates": updates}, self.supervisor)
            if any(h.status()["estopped"] for h in self.handles.values()):
                return
            if sample["env_steps"] - last_ckpt >= int(self.cfg.run.checkpoint_every):
                last_ckpt = self.checkpoint()


def _why(exc: ray.exceptions.RayError) -> str:
    """The error a Ray failure carries, in one line: the exception its task or actor raised (the
    last `SomethingError: ...` line of its report), else Ray's own first line."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        return f"{type(exc.cause).__name__}: {exc.cause}"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt): ", ln)]
    return (raised or lines or [type(exc).__name__])[-1 if raised else 0]
