"""The fleet benchmark's learner: the session's own parts behind the fleet's gateway, without Ray.

What a `robot-rl train` session with edge robots only (`robots={}`, `gateway.port=0`) runs, each
part the class its Ray actor wraps: the `SessionWriter` is the gateway's sink (WriterActor), a
`SessionGateway` serves the edges and streams each learner version to them (WeightService, bulk
channel), and the `LearnerService` trains in a process of its own on the buffer the fleet fills
(LearnerActor), its versions taken by the gateway's follower through `poll_weights`. Ray itself
is left out: it would hide the gateway's commit timings (the ingest figures) in the writer's
process, and the learner's publish times, which weight-sync latency is measured from.
"""

from __future__ import annotations

import multiprocessing as mp
import secrets
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmarks.common import die_with_parent
from benchmarks.fleet_playback import PLAYBACK_CAMERAS, StreamTrace
from robot_rl.config import compose_session
from robot_rl.runtime.env_worker import WeightUpdate
from robot_rl.runtime.gateway import run_specs
from robot_rl.runtime.learner_service import LearnerService
from robot_rl.runtime.run_dir import RunDir

# the user's session config but for warm-up, so that one robot's 60 s run trains at all (the
# default: 500 steps); the learner, never waiting for data by default, does what it can beside
# the fleet's ingest. Versions go out at the default interval: every one costs each of the 64
# robots, all on this machine here, a download and a digest
LEARNER_OVERRIDES = ("learner.warmup_steps=100",)
QUICK_OVERRIDES = ("learner.warmup_steps=16", "learner.batch_size=16",
                   "algo.params.hidden=[32,32]", "runtime.sync_every=1")
SAMPLE_S = 0.25  # how often the learner's process notes its update count


def session_config(run_root: Path, overrides: tuple[str, ...]) -> DictConfig:
    """The edge-only session's config over `run_root` (its token file written there)."""
    run_root.mkdir(parents=True, exist_ok=True)
    token = run_root / "token"
    token.write_text(secrets.token_urlsafe(32))
    token.chmod(0o600)
    return compose_session([
        "task=pick_cube", f"robot.cameras=[{','.join(PLAYBACK_CAMERAS)}]",
        "robot.image_size=128", "robots={}", "gateway.port=0", f"gateway.token_file={token}",
        f"run.dir={run_root / 'run'}", *overrides])


def learner_process(cfg: dict[str, Any], conn: Connection) -> None:
    """The LearnerService on the run's buffer (with the specs its header holds, as an edge-only
    session's learner), training until told to stop; answers `poll_weights(have)` on `conn` and,
    at the end, sends its (monotonic time, updates, process CPU seconds) samples."""
    die_with_parent()
    config = OmegaConf.create(cfg)
    run = RunDir(Path(config.run.dir))
    service = LearnerService(config, run, *run_specs(config, run))
    trainer = threading.Thread(target=service.run, name="learner")
    trainer.start()
    conn.send("ready")
    samples: list[tuple[float, int, float]] = []
    while True:
        samples.append((time.monotonic(), service.updates(), time.process_time()))
        if not conn.poll(SAMPLE_S):
            continue
        have = conn.recv()
        if have is None:
            break
        conn.send(service.poll_weights(have))
    service.stop()
    trainer.join()
    service.close()
    conn.send(samples)


class FleetLearner:
    """The learner's process, and what the gateway took from it: each version's publish time
    (the learner's wall clock) by version."""

    def __init__(self, cfg: DictConfig) -> None:
        self._conn, child = mp.get_context("spawn").Pipe()
        self.process = mp.get_context("spawn").Process(
            target=learner_process, daemon=True,
            args=(OmegaConf.to_container(cfg, resolve=True), child))
        self.process.start()
        if not self._conn.poll(300.0) or self._conn.recv() != "ready":
            raise RuntimeError("the learner's process did not start within 300 s")
        self.published: dict[int, float] = {}
        self._lock = threading.Lock()

    def poll_weights(self, held: int) -> WeightUpdate | None:
        """The SessionGateway's `poll_weights`: a newer version than `held`, if any."""
        with self._lock:
            self._conn.send(held)
            update = self._conn.recv()
        if update is not None:
            self.published[update.version] = update.published_at
        return update

    def stop(self) -> list[tuple[float, int, float]]:
        """Stop training (the gateway's follower has stopped); the (time, updates, CPU
        seconds) samples."""
        with self._lock:
            self._conn.send(None)
            samples = self._conn.recv() if self._conn.poll(120.0) else []
        self.process.join(30.0)
        if self.process.is_alive():
            self.process.kill()
        return samples


def pct(values: list[float] | np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def learner_figures(samples: list[tuple[float, int, float]], published: dict[int, float],
                    traces: list[StreamTrace], start: float, seconds: float,
                    wall_offset: float) -> dict[str, Any]:
    """Updates/s while the fleet streamed (from the first update on), with the CPU the learner's
    process had meanwhile (cores) and spent per update (which tells a learner starved of CPU by
    the fleet beside it from one doing more work per update), weight-sync latency (the learner
    publishes version N -> a robot swaps version N in, each robot and version published in the
    run), policy lag (per transition: the learner's newest published version when it was
    published minus the version its robot acted with, in updates). `wall_offset` turns the
    monotonic `start` into the wall clock."""
    at = np.array(samples, float).reshape(-1, 3)
    inside = at[(at[:, 0] >= start) & (at[:, 0] <= start + seconds)]
    training = inside[inside[:, 1] > inside[0, 1]] if len(inside) else inside
    first, last = (training[0], training[-1]) if len(training) else (None, None)
    timed = first is not None and last[0] > first[0]
    rate = float((last[1] - first[1]) / (last[0] - first[0])) if timed else 0.0
    cores = float((last[2] - first[2]) / (last[0] - first[0])) if timed else None
    per_update = (float((last[2] - first[2]) * 1e3 / (last[1] - first[1]))
                  if timed and last[1] > first[1] else None)
    start_wall = start + wall_offset
    latencies = [(when - published[v]) * 1e3 for t in traces for v, when in t.applied
                 if published.get(v, -1.0) >= start_wall]
    versions = np.array(sorted(published), int)
    times = np.array([published[v] for v in versions], float)
    lags = np.concatenate([
        versions[np.maximum(np.searchsorted(times, t.wall, side="right") - 1, 0)]
        - np.array(t.versions) for t in traces if t.wall]) if len(versions) else np.zeros(0)
    return {"updates": int(inside[-1, 1] - inside[0, 1]) if len(inside) else 0,
            "updates_per_s": rate, "learner_cores": cores,
            "learner_cpu_ms_per_update": per_update,
            "learner_warm_s": float(first[0] - start) if first is not None else None,
            # the versions the gateway took from the learner (it asks every FOLLOW_S) and streamed
            "versions_streamed": int((times >= start_wall).sum()),
            "weight_syncs": len(latencies),
            "weight_sync_ms_p50": pct(latencies, 50), "weight_sync_ms_p99": pct(latencies, 99),
            "policy_lag_p50": pct(lags, 50), "policy_lag_p99": pct(lags, 99)}
