"""Fleet ingest: 1, 4, 16 and 64 robots (two 128x128 cameras each, 10 Hz) streaming through real
edge links into one gateway and one buffer on this machine: transitions/s committed, transitions
lost (every edge's spool against the buffer, by stream and seq), commit latency and ack lag.

The robots play back episodes recorded once with the real MuJoCo sim; `benchmarks.fleet_playback`
says exactly what is played back. Everything from `EdgeLink.publish` on is the path a user runs:
fsynced spools, authenticated websockets on 127.0.0.1, the Gateway with its group commit and the
session's writer over a Zarr buffer on disk.

Each fleet size streams into an edge-only session's own parts (`benchmarks.fleet_learner`): the
session's writer behind the gateway, and its learner training in a process of its own on what
the fleet commits while the gateway streams each new version to every robot. So each size also
gives the learner's updates/s (and the CPU its process had and spent per update: starved, or
working harder), weight-sync latency p50/p99 (the learner publishes a version ->
a robot swaps it in) and policy lag, and `learner_targets` judges updates/s at 64 robots
against one.

    python -m benchmarks.fleet [--quick] [--json benchmarks/results/fleet.json]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import print_table, report, stop_on_sigterm, target
from benchmarks.fleet_learner import (
    LEARNER_OVERRIDES,
    QUICK_OVERRIDES,
    FleetLearner,
    learner_figures,
    pct,
    session_config,
)
from benchmarks.fleet_playback import (
    PLAYBACK_CAMERAS,
    EdgePlan,
    Recording,
    StreamTrace,
    edge_process,
    expected_rewards,
    load_recording,
    played_step,
    stream_of,
)
from buffer import ZarrStorage
from comms.auth import load_token
from comms.messages import spec_digest
from comms.sink import StreamBatch, TransitionSink
from robot_rl.runtime.gateway import SessionGateway
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session_writer import SessionWriter

FLEET_SIZES = (1, 4, 16, 64)
HZ = 10.0
TARGET_ROBOTS = 64
ROBOTS_PER_PROCESS = 16
DRAIN_S = 120.0  # after the fleet stops: how long edges may wait for their last acks
MAX_BACKLOG_S = 30.0  # a robot with this much unacked skips ticks (64 of them: ~4 GB spooled)
SLACK = 0.99  # committed/s may fall short of 640 by what is in flight at the window's edges
WINDOW_S = 10.0  # the sustained rate: the slowest window of this many seconds


class TimedSink(TransitionSink):
    """The real sink, each durable commit timed: (end time, seconds, transitions, streams)."""

    def __init__(self, inner: TransitionSink) -> None:
        self.inner = inner
        self.commits: list[tuple[float, float, int, int]] = []

    def last_seq(self, stream_id: str) -> int:
        return self.inner.last_seq(stream_id)

    def commit_many(self, batches: Sequence[StreamBatch]) -> list[str | None]:
        t0 = time.monotonic()
        refusals = self.inner.commit_many(batches)
        t1 = time.monotonic()
        n = sum(len(b.transitions) for b, r in zip(batches, refusals, strict=True) if r is None)
        self.commits.append((t1, t1 - t0, n, len(batches)))
        return refusals

    def close(self) -> None:
        self.inner.close()


def ensure_recording(run_dir: Path, episodes: int, max_steps: int) -> Path:
    """The buffer of sim episodes the robots play back, recorded once with the real sim by the
    scripted expert at skill 0.3 (successes and failures, up to `max_steps` steps each)."""
    buffer = run_dir / "buffer"
    if not (buffer / "commit.json").exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, "-m", "robot_rl.cli", "record-demos", "task=pick_cube",
               f"robot.cameras=[{','.join(PLAYBACK_CAMERAS)}]", "robot.image_size=128",
               f"episodes={episodes}", "skill=0.3", f"task.max_steps={max_steps}",
               f"run.dir={run_dir}"]
        print("recording the playback episodes:", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "MUJOCO_GL": "egl"},
                       stdout=subprocess.DEVNULL)
    return buffer


def run_fleet(robots: int, seconds: float, recording: Path, root: Path,
              overrides: tuple[str, ...]) -> tuple[dict[str, Any], list[StreamTrace], TimedSink]:
    """`robots` robots streaming for `seconds` into an edge-only session's gateway, writer and
    learner (config `overrides`) over a new run in `root`."""
    storage = ZarrStorage.open_existing(recording)
    obs_spec, action_spec = storage.obs_spec, storage.action_spec
    cfg = session_config(root, overrides)
    token, digest = load_token(Path(cfg.gateway.token_file)), spec_digest(obs_spec, action_spec)
    sink = TimedSink(SessionWriter(RunDir(Path(cfg.run.dir)), obs_spec, action_spec,
                                   str(cfg.task.name)))
    learner = FleetLearner(cfg)
    gateway = SessionGateway(cfg, sink, obs_spec, action_spec, learner.poll_weights)
    ctx = mp.get_context("spawn")
    workers, samples = [], []
    try:
        for first in range(0, robots, ROBOTS_PER_PROCESS):
            plan = EdgePlan(f"ws://127.0.0.1:{gateway.port}", token, digest, recording,
                            list(range(first, min(robots, first + ROBOTS_PER_PROCESS))), robots,
                            root / "spools", HZ, DRAIN_S, MAX_BACKLOG_S)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=edge_process, args=(plan, child), daemon=True)
            proc.start()
            workers.append((proc, parent))
        connected = sum(conn.recv()[1] for _, conn in workers)
        if connected != robots:
            raise RuntimeError(f"only {connected} of {robots} edges connected within 60 s")
        start_wall = time.time() + 1.0
        start = time.monotonic() + (start_wall - time.time())
        before, load_before = os.times(), os.getloadavg()[0]
        for _, conn in workers:
            conn.send((start_wall, seconds))
        traces, edge_cpu = [], np.zeros(2)
        for proc, conn in workers:
            if not conn.poll(seconds + DRAIN_S + 60.0):
                raise RuntimeError("an edge process did not report back in time")
            _, got, cpu = conn.recv()
            traces += got
            edge_cpu += cpu
            proc.join(30.0)
        after = os.times()
        gateway_cpu = (after.user - before.user, after.system - before.system)
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.kill()
        gateway.stop()
        samples = learner.stop()
        sink.close()
    facts = {"gateway_stats": gateway.stats(),
             "gateway_cpu_s": {"user": gateway_cpu[0], "system": gateway_cpu[1]},
             "edge_cpu_s": {"user": float(edge_cpu[0]), "system": float(edge_cpu[1])},
             # the machine's 1-min load average (runnable threads on its cores, everyone's)
             "load_average": {"start": load_before, "end": os.getloadavg()[0]},
             "start": start, "seconds": seconds,
             **learner_figures(samples, learner.published, traces, start, seconds,
                               start_wall - start)}
    return facts, sorted(traces, key=lambda t: t.robot), sink


def verify(path: Path, traces: list[StreamTrace], recording: Recording) -> dict[str, int]:
    """Every seq every edge spooled against the buffer on disk, by stream: each acked one found
    (lost: one that is not), none twice, in order, with the reward it was published with; each
    stream's mark in the commit record; the images of a sample of rows equal to the recorded
    ones. Seqs still unacked when the run ended are counted apart (they wait in the spool)."""
    storage = ZarrStorage.open_existing(path)
    info, marks = storage.read_step_info(), storage.meta.get("streams", {})
    counts = dict.fromkeys(("lost", "duplicated", "strangers", "out_of_order", "bad_reward",
                            "bad_mark", "bad_images", "unacked_at_end"), 0)
    rng = np.random.default_rng(0)
    for trace in traces:
        stream = stream_of(trace.robot)
        robot = storage.robots.index(stream) if stream in storage.robots else -1
        rows = np.flatnonzero(info["robot_id"] == robot) if robot >= 0 else np.zeros(0, int)
        seq_of = {w: s for s, w in enumerate(trace.wall)}
        seqs = np.array([seq_of.get(float(w), -1) for w in info["timestamp"][rows]], int)
        known = seqs[seqs >= 0]
        counts["strangers"] += int((seqs < 0).sum())
        counts["lost"] += trace.acked + 1 - len(np.unique(known[known <= trace.acked]))
        counts["unacked_at_end"] += len(trace.wall) - 1 - trace.acked
        counts["duplicated"] += len(known) - len(np.unique(known))
        counts["out_of_order"] += int((np.diff(known) <= 0).sum())
        expected = expected_rewards(trace.robot, len(trace.wall), recording)
        counts["bad_reward"] += int((info["reward"][rows[seqs >= 0]] != expected[known]).sum())
        counts["bad_mark"] += int(not trace.acked <= marks.get(stream, -1) < len(trace.wall))
        for i in rng.choice(len(known), min(2, len(known)), replace=False):
            stored = storage.read_rows(rows[seqs >= 0][i: i + 1])
            played = recording.steps[played_step(trace.robot, int(known[i]), recording)]
            counts["bad_images"] += int(not all(np.array_equal(stored[f"obs/{k}"][0], v)
                                                for k, v in played.obs.items()))
    counts["rows"] = storage.steps
    return counts


def summarize(robots: int, facts: dict[str, Any], traces: list[StreamTrace], sink: TimedSink,
              checked: dict[str, int], disk_bytes: int) -> dict[str, Any]:
    """One fleet size's figures."""
    start, seconds = facts.pop("start"), facts["seconds"]
    commits = np.array(sink.commits) if sink.commits else np.zeros((0, 4))
    inside = (commits[:, 0] >= start) & (commits[:, 0] < start + seconds)
    edges = np.arange(start, start + seconds - WINDOW_S / 2, WINDOW_S)
    windows = [commits[(commits[:, 0] >= a) & (commits[:, 0] < a + WINDOW_S), 2].sum()
               / min(WINDOW_S, start + seconds - a) for a in edges]
    lags = np.concatenate([t.ack_lag_s for t in traces]) * 1e3
    published = sum(len(t.wall) for t in traces)
    return {
        "robots": robots, **facts, "published": published, "offered_per_s": published / seconds,
        "committed_per_s": float(commits[inside, 2].sum()) / seconds,
        "slowest_window_per_s": float(min(windows)) if windows else None,
        "windows_per_s": [round(float(w), 1) for w in windows],  # committed, window by window
        "commits": len(commits), "transitions_per_commit": float(commits[:, 2].mean())
        if len(commits) else None,
        "streams_per_commit": float(commits[:, 3].mean()) if len(commits) else None,
        "commit_ms_p50": pct(commits[:, 1] * 1e3, 50),
        "commit_ms_p99": pct(commits[:, 1] * 1e3, 99),
        "ack_lag_ms_p50": pct(lags, 50), "ack_lag_ms_p99": pct(lags, 99),
        "late_publishes": sum(t.late for t in traces),
        "skipped_ticks": sum(t.skipped for t in traces),
        "publish_ms_mean": 1e3 * sum(t.publish_s for t in traces) / max(published, 1),
        "undrained_edges": sum(not t.drained for t in traces),
        "edge_errors": sorted({t.error for t in traces if t.error}),
        "disconnects": sum(t.link.get("disconnects", 0) for t in traces),
        "gateway_cpu_ms_per_transition": 1e3 * sum(facts["gateway_cpu_s"].values())
        / max(published, 1),
        "edge_cpu_ms_per_transition": 1e3 * sum(facts["edge_cpu_s"].values())
        / max(published, 1),
        "disk_bytes_per_transition": disk_bytes / max(checked["rows"], 1),
        **checked,
    }


def fleet_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets that a fleet run measures, the learner's among them."""
    big = results["fleets"].get(str(TARGET_ROBOTS))
    if big is None:
        return []
    lost = big["lost"] + big["duplicated"] + big["strangers"] + big["bad_reward"] + \
        big["bad_mark"] + big["bad_images"]
    targets = [
        target(f"{TARGET_ROBOTS} robots: image transitions/s committed over "
               f"{big['seconds']:.0f} s", big["committed_per_s"], SLACK * TARGET_ROBOTS * HZ, ">="),
        target(f"{TARGET_ROBOTS} robots: slowest {WINDOW_S:.0f} s window, transitions/s",
               big["slowest_window_per_s"], SLACK * TARGET_ROBOTS * HZ, ">="),
        target(f"{TARGET_ROBOTS} robots: transitions lost, duplicated or altered", lost, 0, "<="),
    ]
    return targets + learner_targets(results)


def learner_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Learner updates/s at 64 robots >= 0.8x at one (when the run had both sizes)."""
    fleets = results["fleets"]
    one, big = fleets.get("1", {}), fleets.get(str(TARGET_ROBOTS), {})
    if one.get("updates_per_s") is None or big.get("updates_per_s") is None:
        return []
    return [target(f"learner updates/s, {TARGET_ROBOTS} robots / 1",
                   big["updates_per_s"] / one["updates_per_s"], 0.8, ">=")]


def measure(sizes: Sequence[int], seconds: dict[int, float], recording: Path, root: Path,
            overrides: tuple[str, ...]) -> dict[str, Any]:
    """Each fleet size in turn, each into a fresh run whose buffer is verified and deleted."""
    played = load_recording(recording)
    fleets = {}
    for robots in sizes:
        run_root = root / f"fleet-{robots}"
        facts, traces, sink = run_fleet(robots, seconds[robots], recording, run_root, overrides)
        buffer = run_root / "run" / "buffer"
        checked = verify(buffer, traces, played)
        disk = sum(f.stat().st_size for f in buffer.rglob("*") if f.is_file())
        fleets[str(robots)] = fleet = summarize(robots, facts, traces, sink, checked, disk)
        shutil.rmtree(run_root)
        print(f"{robots} robots: {fleet['committed_per_s']:.1f} transitions/s committed, "
              f"{checked['lost']} lost; learner {fleet['updates_per_s']:.2f} updates/s",
              flush=True)
    return {"hz": HZ, "cameras": list(PLAYBACK_CAMERAS), "image_size": 128,
            "recorded_steps": len(played.steps), "recorded_episodes": len(played.ends),
            "played_back": "robot, cameras, policy and reward (recorded sim transitions); real: "
                           "publish, spool, websocket, auth, gateway, group commit, buffer, "
                           "the session's writer and learner, weight sync to every robot",
            "learner_overrides": list(overrides), "fleets": fleets}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--sizes", default=",".join(map(str, FLEET_SIZES)),
                        help="fleet sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"how long each fleet streams (full run: {TARGET_ROBOTS} robots "
                             "600 s, the others 60 s; quick: 4 s)")
    parser.add_argument("--recording", type=Path, default=None,
                        help="run directory of the recorded episodes (recorded if missing)")
    args = parser.parse_args()
    stop_on_sigterm()
    sizes = [int(s) for s in args.sizes.split(",")]
    full = {n: 600.0 if n == TARGET_ROBOTS else 60.0 for n in sizes}
    seconds = {n: args.seconds or (4.0 if args.quick else full[n]) for n in sizes}
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    try:
        recording_dir = args.recording or (root / "recording" if args.quick else
                                           Path.home() / ".cache/robot_rl/fleet-playback")
        recording = ensure_recording(recording_dir, 2 if args.quick else 8,
                                     40 if args.quick else 120)
        results = measure(sizes, seconds, recording, root,
                          QUICK_OVERRIDES if args.quick else LEARNER_OVERRIDES)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [[f["robots"], f["offered_per_s"], f["committed_per_s"], f["slowest_window_per_s"],
             f["lost"], f["unacked_at_end"], f["skipped_ticks"], f["transitions_per_commit"],
             f["commit_ms_p50"],
             f["commit_ms_p99"], f["ack_lag_ms_p50"], f["ack_lag_ms_p99"],
             f["gateway_cpu_ms_per_transition"], f["edge_cpu_ms_per_transition"],
             f["updates_per_s"], f["learner_cores"], f["learner_cpu_ms_per_update"],
             f["weight_sync_ms_p50"], f["weight_sync_ms_p99"],
             f["policy_lag_p50"], f["policy_lag_p99"]]
            for f in results["fleets"].values()]
    print_table(["robots", "offered/s", "committed/s", f"slowest {WINDOW_S:.0f}s", "lost",
                 "unacked", "skipped", "per commit", "commit p50 ms", "p99", "ack lag p50 ms",
                 "p99",
                 "gw cpu ms/t", "edge cpu ms/t", "updates/s", "learner cores",
                 "cpu ms/update", "sync p50 ms", "p99", "lag p50",
                 "p99"],
                rows, title="fleet ingest: two 128x128 cameras per robot at 10 Hz, one session's "
                            "gateway, buffer and learner (played back: the robots; real: the "
                            "rest)")
    return report("fleet", results, fleet_targets(results), args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
