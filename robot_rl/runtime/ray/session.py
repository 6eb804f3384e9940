"""The session on Ray: env workers, the buffer's writer and the learner as actors, this process
watching them. `runtime.mode=async`: robots act and the learner trains at once, weights flow
every `runtime.sync_every` updates; `sync`: the same parts in lockstep (an episode, then its
updates, then the weights), the debugging twin and the benchmark's baseline."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import numpy as np
import ray
from omegaconf import DictConfig, OmegaConf

from robot_rl.core import SessionError
from robot_rl.runtime.build import build_algorithm, demo_fraction, session_specs
from robot_rl.runtime.checkpoint import load_latest
from robot_rl.runtime.live_display import LiveDisplay
from robot_rl.runtime.ray.actors import EnvWorkerActor, LearnerActor, WriterActor
from robot_rl.runtime.ray.cluster import ray_for_session
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session_writer import EpisodeSummary

log = logging.getLogger(__name__)
WATCH_S = 0.5  # how often this process samples the parts


class RaySession:
    """Runs the configured robots and one learner until `run.env_steps` steps are stored."""

    def __init__(self, cfg: DictConfig, run: RunDir) -> None:
        self.cfg, self.run = cfg, run
        self.obs_spec, self.action_spec = session_specs(cfg)
        algo = build_algorithm(cfg, self.obs_spec, self.action_spec)  # config errors: now
        self.gamma, self.with_demos = algo.config.gamma, demo_fraction(algo) > 0
        self.mode = str(cfg.runtime.mode)
        self.recent: list[EpisodeSummary] = []
        self.seen = 0
        self.safety_base: Counter[str] = Counter((load_latest(run.checkpoints) or {})
                                                 .get("safety", {}))
        self.timings: dict[str, list[float]] = {"episode_s": [], "train_s": [], "updates": []}

    # -- start and stop ----------------------------------------------------------------------------
    def run_until_budget(self) -> dict[str, Any]:
        address = self.cfg.cluster.address
        with ray_for_session(None if address is None else str(address), self.run.root / "logs"):
            return self._run()

    def _start(self) -> None:
        cfg = OmegaConf.to_container(self.cfg, resolve=True)
        self.writer = WriterActor.remote(cfg, self.obs_spec, self.action_spec, self.gamma,
                                         self.with_demos)
        stored, _ = ray.get(self.writer.stored.remote())  # the buffer exists before the learner
        self.learner = LearnerActor.remote(cfg, self.obs_spec, self.action_spec)
        self.workers = [EnvWorkerActor.remote(cfg, self.writer, self.learner, stored,
                                              self.mode == "async")]
        ray.get([self.learner.updates.remote(), *[w.status.remote() for w in self.workers]])

    def _stop(self, runs: list[Any]) -> None:
        """Workers end their episode (committed) and hold; the learner stops and checkpoints."""
        for w in self.workers:
            w.stop.remote()
        self.learner.stop.remote()
        ray.get(runs)
        self.checkpoint()
        ray.get([w.close.remote() for w in self.workers])
        ray.get([self.learner.close.remote(), self.writer.close.remote()])

    def checkpoint(self) -> int:
        safety = Counter(self.safety_base)
        for status in ray.get([w.status.remote() for w in self.workers]):
            safety.update(status["safety"])
        return int(ray.get(self.learner.checkpoint.remote(dict(safety))))

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        self._start()
        budget = int(self.cfg.run.env_steps)
        self.tb = SummaryWriter(str(self.run.tensorboard))
        display = LiveDisplay(self.run.root / "metrics.jsonl", f"{self.cfg.task.name} "
                              f"({self.mode})", budget)
        self.t0 = time.monotonic()
        runs: list[Any] = []
        try:
            if self.mode == "async":
                runs = [self.learner.run.remote(), *[w.run.remote() for w in self.workers]]
                self._watch_async(runs, display, budget)
            else:
                self._lockstep(display, budget)
            self._stop(runs)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the parts, keep the learner
            self._stop(runs)
            raise
        except ray.exceptions.RayError as exc:
            raise SessionError(f"a part of the session died: {exc}; every committed episode is "
                               "in the buffer: run the same command again to resume") from None
        finally:
            display.close()
            self.tb.close()
        return self.sample()

    def _watch_async(self, runs: list[Any], display: LiveDisplay, budget: int) -> None:
        last_ckpt = self.sample()["env_steps"]
        while True:
            done, _ = ray.wait(runs, timeout=WATCH_S)
            if self.learner_run_ended(done, runs):
                ray.get(done)  # raises what ended it
            sample = self.sample()
            display.show(sample)
            if sample["env_steps"] >= budget or len(done) == len(runs) - 1:
                return
            if sample["env_steps"] - last_ckpt >= int(self.cfg.run.checkpoint_every):
                last_ckpt = self.checkpoint()

    @staticmethod
    def learner_run_ended(done: list[Any], runs: list[Any]) -> bool:
        """The learner trains until told to stop: its run ending early means it failed."""
        return runs[0] in done

    def _lockstep(self, display: LiveDisplay, budget: int) -> None:
        """An episode, its updates (update-to-data ratio × its steps, after warm-up), weights."""
        ratio, last_ckpt = float(self.cfg.learner.updates_per_step), self.sample()["env_steps"]
        worker = self.workers[0]
        while (sample := self.sample())["env_steps"] < budget:
            length, episode_s = ray.get(worker.run_episode.remote())
            started = time.monotonic()
            n = int(round(ratio * length)) if sample["env_steps"] >= self.cfg.learner.warmup_steps \
                else 0
            ray.get(self.learner.train.remote(n))
            ray.get(worker.take_weights.remote())
            self.timings["episode_s"].append(episode_s)
            self.timings["train_s"].append(time.monotonic() - started)
            self.timings["updates"].append(n)
            display.show(self.sample())
            if sample["env_steps"] - last_ckpt >= int(self.cfg.run.checkpoint_every):
                last_ckpt = self.checkpoint()

    # -- what is shown -----------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        """One row of the metrics log; new episodes also go to TensorBoard."""
        (steps, episodes), progress, *statuses = ray.get([
            self.writer.stored.remote(), self.learner.progress.remote(),
            *[w.status.remote() for w in self.workers]])
        new = ray.get(self.writer.episodes_since.remote(self.seen))
        self.seen += len(new)
        for ep in new:
            self._log_episode(ep)
        self.recent = (self.recent + new)[-20:]
        for key, value in progress["metrics"].items():
            self.tb.add_scalar(f"learner/{key}", value, steps)
        latencies = [s["sync_latency_s"] for s in statuses if s["sync_latency_s"] is not None]
        latency = max(latencies) if latencies else None
        return {
            "t": round(time.monotonic() - self.t0, 3), "mode": self.mode, "env_steps": steps,
            "episodes": episodes, "buffer_steps": steps,
            "success_20": float(np.mean([e.success for e in self.recent])) if self.recent else 0.0,
            "intervention_rate_20": (float(np.mean([e.intervention_rate for e in self.recent]))
                                     if self.recent else 0.0),
            "updates": progress["updates"], "updates_per_s": round(progress["updates_per_s"], 2),
            "policy_version": progress["version"],
            "policy_lag": progress["version"] - min(s["version"] for s in statuses),
            "sync_latency_s": None if latency is None else round(latency, 4),
        }

    def _log_episode(self, ep: EpisodeSummary) -> None:
        step = ep.stored_steps
        self.tb.add_scalar("episode/return", ep.total_reward, step)
        self.tb.add_scalar("episode/success", float(ep.success), step)
        self.tb.add_scalar("episode/length", ep.length, step)
        self.tb.add_scalar("episode/interventions", ep.interventions, step)
        self.tb.add_scalar("episode/intervention_rate", ep.intervention_rate, step)
