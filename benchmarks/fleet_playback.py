"""The fleet benchmark's robots: recorded sim episodes played back at the control rate through real
edge links (real spools, websockets and auth), a process hosting a share of the fleet.

What is played back: the robot, its cameras, policy and reward, i.e. each transition's content
(observations with both camera images, action, reward, flags), read from a buffer that
`robot-rl record-demos` filled with the real MuJoCo sim. What is real: everything from
`EdgeLink.publish` on (encode, the edge's field checks, the fsynced spool, the websocket, the
gateway and the buffer). Each robot stamps its transitions with its own ids, episode numbers,
steps and the wall clock of the moment it publishes. Like a local-policy edge, each robot takes the
learner's weights on its link (EdgeWeights: the session's bulk channel), swaps each new version in
between two steps and stamps its transitions with the version it holds (the recorded actions are
still the ones played back: no policy acts).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from benchmarks.common import die_with_parent
from buffer import ZarrStorage
from buffer.episodes import EpisodeReader
from comms.edge_link import EdgeLink
from comms.edge_weights import EdgeWeights
from comms.spool import Spool
from robot_rl.core import CommsError, Source, Transition

PLAYBACK_CAMERAS = ("wrist_cam", "side_cam")


@dataclass(frozen=True)
class Recording:
    """Recorded steps in playing order; `ends[i]` is the success of the episode step i ended."""

    steps: list[Transition]
    ends: dict[int, bool]


def load_recording(path: Path) -> Recording:
    """Every ended episode of the buffer at `path`, one after the other."""
    reader = EpisodeReader(ZarrStorage.open_existing(path))
    steps: list[Transition] = []
    ends: dict[int, bool] = {}
    for ep in reader:
        next_obs = ep.next_obs
        for i in range(ep.length):
            steps.append(Transition(
                obs={k: v[i] for k, v in ep.obs.items()}, action=ep.action[i],
                reward=float(ep.info["reward"][i]), next_obs={k: v[i] for k, v in next_obs.items()},
                terminated=bool(ep.info["terminated"][i]), truncated=bool(ep.info["truncated"][i]),
                intervened=bool(ep.info["intervened"][i]), source=Source(int(ep.info["source"][i])),
                policy_version=int(ep.info["policy_version"][i])))
        ends[len(steps) - 1] = ep.success
    return Recording(steps, ends)


def stream_of(robot: int) -> str:
    return f"fleet-r{robot:03d}"


def start_step(robot: int, recording: Recording) -> int:
    """Where robot `robot` starts in the recording: robots start at different episodes."""
    starts = [0, *sorted(i + 1 for i in recording.ends)][:-1]
    return starts[robot % len(starts)]


def played_step(robot: int, seq: int, recording: Recording) -> int:
    """The recorded step robot `robot` publishes as its `seq`-th transition."""
    return (start_step(robot, recording) + seq) % len(recording.steps)


class TimedSpool(Spool):
    """The real spool, noting when each ack arrives (the edge's view of the commit)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.acks: list[tuple[float, int]] = []  # (monotonic time, last acked seq)

    def ack(self, stream_id: str, last_seq: int) -> None:
        super().ack(stream_id, last_seq)
        self.acks.append((time.monotonic(), last_seq))


@dataclass
class StreamTrace:
    """What one robot published and when its transitions were acked."""

    robot: int
    wall: list[float] = field(default_factory=list)  # wall_time of each seq
    versions: list[int] = field(default_factory=list)  # the policy version it held, each seq
    applied: list[tuple[int, float]] = field(default_factory=list)  # (version, wall time) taken
    ack_lag_s: list[float] = field(default_factory=list)  # spooled -> acked, per seq
    late: int = 0  # publishes that started over one period behind the schedule
    skipped: int = 0  # ticks with no step taken: the robot was too far behind (see EdgePlan)
    publish_s: float = 0.0  # time spent inside publish (encode, check, fsynced spool)
    drained: bool = False  # everything was acked before the deadline
    acked: int = -1  # the last seq acked when the run ended (later ones are still spooled)
    error: str | None = None  # why publishing stopped early
    link: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EdgePlan:
    """What one edge process does: which robots, where to, and for how long."""

    url: str
    token: bytes
    digest: str
    recording: Path
    robots: list[int]
    fleet_size: int
    spool_dir: Path
    hz: float
    drain_s: float
    max_backlog_s: float  # a robot this far behind skips its ticks (the disk is shared)


def play(link: EdgeLink, spool: TimedSpool, robot: int, recording: Recording, plan: EdgePlan,
         start: float, stop: float) -> StreamTrace:
    """Publish robot `robot`'s transitions at `plan.hz` from `start` to `stop` (monotonic), each
    period offset by the robot's share of it, skipping ticks while more than
    `plan.max_backlog_s` of them wait unacked; then wait until everything is acked."""
    trace = StreamTrace(robot)
    period = 1.0 / plan.hz
    first, stream = start + period * robot / plan.fleet_size, stream_of(robot)
    spooled: list[float] = []
    episode, step, tick, held = 0, 0, 0, 0
    while (due := first + tick * period) < stop and trace.error is None:
        tick += 1
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        elif now - due > period:
            trace.late += 1
        if spool.pending_count() > plan.max_backlog_s * plan.hz:
            trace.skipped += 1  # the gateway is that far behind: no step this tick
            continue
        weights = link.poll_weights()  # a step boundary: where a local-policy edge swaps
        if weights is not None:
            held = weights.version
            trace.applied.append((held, time.time()))
        seq = len(trace.wall)
        index = played_step(robot, seq, recording)
        t = dataclasses.replace(recording.steps[index], robot_id=stream, episode_id=episode,
                                step=step, policy_version=held, wall_time=time.time(),
                                mono_time=time.monotonic())
        ends = {0: recording.ends[index]} if index in recording.ends else None
        t0 = time.monotonic()
        try:
            link.publish(stream, [t], ends)
        except CommsError as exc:  # a full spool: reported, not hidden
            trace.error = str(exc)
            break
        trace.publish_s += time.monotonic() - t0
        spooled.append(t0)
        trace.wall.append(t.wall_time)
        trace.versions.append(held)
        episode, step = (episode + 1, 0) if ends else (episode, step + 1)
    trace.drained = link.wait_acked(plan.drain_s)
    trace.acked = spool.acked(stream)
    trace.ack_lag_s = ack_lags(spooled, spool.acks)
    trace.link = dict(link.stats)
    return trace


def ack_lags(spooled: list[float], acks: list[tuple[float, int]]) -> list[float]:
    """Per seq: time from being spooled to the first ack covering it (seqs never acked: none)."""
    lags, i = [], 0
    for when, last in sorted(acks):
        while i <= last and i < len(spooled):
            lags.append(when - spooled[i])
            i += 1
    return lags


def edge_process(plan: EdgePlan, conn: Connection) -> None:
    """Start one link per robot, say `ready` once all are connected, play from the start time
    the parent sends (wall clock) for the duration it sends, and send the traces back."""
    die_with_parent()
    recording = load_recording(plan.recording)
    links: list[tuple[EdgeLink, TimedSpool, int]] = []
    for robot in plan.robots:
        spool = TimedSpool(plan.spool_dir / f"{stream_of(robot)}.spool")
        link = EdgeLink(plan.url, plan.token, f"edge-{stream_of(robot)}", plan.digest, spool,
                        streams=[stream_of(robot)], weights=EdgeWeights())
        links.append((link.start(), spool, robot))
    deadline = time.monotonic() + 60.0
    while not all(link.connected for link, _, _ in links) and time.monotonic() < deadline:
        time.sleep(0.05)
    conn.send(("ready", sum(link.connected for link, _, _ in links)))
    start_wall, duration = conn.recv()
    start = time.monotonic() + (start_wall - time.time())
    traces: list[StreamTrace] = []
    threads = [threading.Thread(target=lambda a=args: traces.append(
        play(*a, recording, plan, start, start + duration)), name=f"play-{args[2]}")
        for args in links]
    before = os.times()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.times()
    cpu = (after.user - before.user, after.system - before.system)
    for link, spool, _ in links:
        link.close()
        spool.close()
    conn.send(("done", traces, cpu))


def expected_rewards(robot: int, count: int, recording: Recording) -> np.ndarray:
    """The rewards robot `robot` published as seqs 0..count-1 (a content check per seq)."""
    rewards = np.array([t.reward for t in recording.steps], np.float32)
    return rewards[[played_step(robot, s, recording) for s in range(count)]]
