"""What a session shows of itself: one metrics row per sample (the live display and the JSONL
log), TensorBoard scalars, and the status file `robot-rl status` reads."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import ray

from robot_rl.runtime.live_display import LiveDisplay
from robot_rl.runtime.ray.robots import RobotHandle
from robot_rl.runtime.ray.supervisor import Supervisor
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session_status import write_status
from robot_rl.runtime.session_writer import EpisodeSummary

ANSWER_S = 10.0  # a sample waits this long for the parts' answers (a restarting part: skipped)


class SessionView:
    """Samples the writer, the learner and the robots; `show` once per watch interval."""

    def __init__(self, run: RunDir, mode: str, budget: int, title: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run, self.mode, self.budget = run, mode, budget
        self.tb = SummaryWriter(str(run.tensorboard))
        self.display = LiveDisplay(run.root / "metrics.jsonl", title, budget)
        self.recent: list[EpisodeSummary] = []
        self.seen = 0  # episode summaries taken from the writer
        self.last: dict[str, Any] = {"env_steps": 0, "updates": 0, "policy_version": 0}
        self.robots: dict[str, dict[str, Any]] = {}

    def writer_restarted(self) -> None:
        """A restarted writer numbers its episode summaries from zero again."""
        self.seen = 0

    def sample(self, writer: Any, learner: Any, handles: dict[str, RobotHandle],
               elapsed: float) -> dict[str, Any]:
        """One row of the metrics log (the last one again while a part restarts)."""
        try:
            (steps, episodes), progress, edges, new = ray.get([
                writer.stored.remote(), learner.progress.remote(), writer.edge_status.remote(),
                writer.episodes_since.remote(self.seen)], timeout=ANSWER_S)
            statuses = {rid: h.status() for rid, h in handles.items()}
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
            return self.last
        self.seen += len(new)
        for ep in new:
            self._log_episode(ep)
        self.recent = (self.recent + new)[-20:]
        for key, value in progress["metrics"].items():
            self.tb.add_scalar(f"learner/{key}", value, steps)
        self.robots = {rid: {"kind": "sim", **s} for rid, s in statuses.items()}
        held = [s["version"] for s in statuses.values()]
        latencies = [s["sync_latency_s"] for s in statuses.values()]
        if edges.get("version", -1) >= 0 and edges["stats"].get("act_requests", 0):
            held.append(edges["version"])  # remote-policy edges act with the served version
            latencies.append(edges["sync_latency_s"])
            self.robots["remote-policy edges"] = {"kind": "edge", "version": edges["version"],
                                                  "sync_latency_s": edges["sync_latency_s"]}
        for edge, st in edges.get("weights", {}).items():  # local-policy edges and relays
            self.robots[edge] = {"kind": "edge", "version": st.get("version"),
                                 "sync_latency_s": st.get("sync_latency_s"),
                                 "health": "ok" if st.get("connected") else "link down"}
            if st.get("connected") and st.get("version") is not None and st["version"] >= 0:
                held.append(st["version"])
                latencies.append(st.get("sync_latency_s"))
        latencies = [x for x in latencies if x is not None]
        recent = self.recent
        row = {
            "t": round(elapsed, 3), "mode": self.mode, "env_steps": steps,
            "episodes": episodes, "buffer_steps": steps,
            "success_20": float(np.mean([e.success for e in recent])) if recent else 0.0,
            "intervention_rate_20": (float(np.mean([e.intervention_rate for e in recent]))
                                     if recent else 0.0),
            # after a learner's restart its counters may lag until it is told where they were
            "updates": max(progress["updates"], self.last["updates"]),
            "updates_per_s": round(progress["updates_per_s"], 2),
            "policy_version": max(progress["version"], self.last["policy_version"]),
            "policy_lag": progress["version"] - min(held) if held else None,
            "sync_latency_s": round(max(latencies), 4) if latencies else None,
        }
        for key in ("updates_per_s", "policy_lag", "sync_latency_s"):
            if row[key] is not None:
                self.tb.add_scalar(f"session/{key}", row[key], steps)
        for rid, status in statuses.items():
            for kind, count in status["safety"].items():
                self.tb.add_scalar(f"safety/{rid}/{kind}", count, steps)
        self.last = row
        return row

    def show(self, row: dict[str, Any], supervisor: Supervisor, state: str = "running") -> None:
        """The row to the display and the metrics log; the status file rewritten."""
        self.display.show(row)
        write_status(self.run, {
            "state": state, "mode": self.mode, "budget": self.budget,
            **{k: row.get(k) for k in ("env_steps", "episodes", "updates", "policy_version")},
            "parts": supervisor.parts(), "robots": self.robots,
            "events": supervisor.events[-20:], "at": time.time()})

    def _log_episode(self, ep: EpisodeSummary) -> None:
        step = ep.stored_steps
        self.tb.add_scalar("episode/return", ep.total_reward, step)
        self.tb.add_scalar("episode/success", float(ep.success), step)
        self.tb.add_scalar("episode/length", ep.length, step)
        self.tb.add_scalar("episode/interventions", ep.interventions, step)
        self.tb.add_scalar("episode/intervention_rate", ep.intervention_rate, step)
        self.tb.add_scalar(f"robot/{ep.robot_id}/success", float(ep.success), step)

    def close(self) -> None:
        self.display.close()
        self.tb.close()
