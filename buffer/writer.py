"""The single writer of a buffer: turns transitions of interleaved robots into rows.

Each robot has at most one open episode. A step's next observation is not stored again when it is
the robot's following observation (the following row points back with `prev_row`); otherwise it
goes to the `tails` table (episode ends, discontinuities). The next observation of an open
episode's last row is kept durable by each commit outside that table (`open_tails`), until the
robot's next row links to it: tails cost one observation per episode, however many robots
interleave and however often they commit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from buffer.checks import check_transitions
from buffer.storage import Storage
from robot_rl.core import Observation, StorageError, Transition


class Writer(ABC):
    """The one writer of a buffer: turns transitions of interleaved robots into staged rows,
    which its storage's next commit makes durable."""

    robots: list[str]
    """Robot names in the order their ids were given (the commit stores them)."""
    tasks: list[str]
    next_episode: int
    open: dict[str, OpenEpisode]
    """Robot id -> its episode that has rows but has not ended."""

    @abstractmethod
    def append(self, transitions: Sequence[Transition], task: str | None = None) -> None:
        """Stage rows; a robot's first transition after an ended episode opens a new one."""

    @abstractmethod
    def end_episode(self, success: bool, robot_id: str | None = None) -> None:
        """Close the open episode of `robot_id` (or the only open one)."""

    @abstractmethod
    def open_tails(self) -> dict[int, Observation]:
        """Step row -> next observation of each open episode's last row that no tail holds:
        what the next commit must keep durable for the episode to continue after a reopen."""


@dataclass
class OpenEpisode:
    """Bookkeeping of one robot's episode that has not ended yet."""

    episode_id: int
    robot: int
    task: int
    first_row: int
    last_row: int = -1
    length: int = 0
    total_reward: float = 0.0
    interventions: int = 0
    source_episode: int = 0
    start_time: float = 0.0
    end_time: float = 0.0
    pending_next: Observation | None = None  # next_obs of last_row, until a later row has it
    tail_saved: bool = False  # pending_next is in the tails table


def _index(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name)


class EpisodeWriter(Writer):
    """Stages rows of `steps`, `step_info`, `tails` and `episodes`; the storage commits them."""

    def __init__(self, storage: Storage, default_task: str,
                 recovered: dict[str, OpenEpisode]) -> None:
        self.storage = storage
        self.default_task = default_task
        self.robots, self.tasks = list(storage.robots), list(storage.tasks)
        self.next_episode = storage.next_episode
        self.open = recovered
        self.next_row = storage.steps
        self.keys = list(storage.obs_spec)

    def append(self, transitions: Sequence[Transition], task: str | None = None) -> None:
        """Stage rows; a robot's first transition after an ended episode opens a new one.
        Every transition is checked first: a SpecError stages nothing."""
        if not transitions:
            return
        spec = self.storage.obs_spec
        check_transitions(spec, self.storage.action_spec, transitions, lambda i: "transition")
        info: dict[str, list] = {k: [] for k in self.storage.tables["step_info"].specs}
        touched: dict[int, OpenEpisode] = {}
        for t in transitions:
            ep = self._episode_for(t, task)
            prev = -1
            row = self.next_row
            if ep.pending_next is not None:
                # (bitwise: cheaper than array_equal, and never links two different values)
                if all(ep.pending_next[k].tobytes() == np.asarray(t.obs[k]).tobytes()
                       for k in self.keys):
                    prev = ep.last_row  # this row's observation is that row's next one
                elif not ep.tail_saved:
                    self._stage_tail(ep.last_row, ep.pending_next)
            self.next_row += 1
            values = {"reward": t.reward, "terminated": t.terminated, "truncated": t.truncated,
                      "intervened": t.intervened, "source": int(t.source),
                      "policy_version": t.policy_version, "robot_id": ep.robot, "task": ep.task,
                      "episode_id": ep.episode_id, "step": ep.length, "timestamp": t.wall_time,
                      "prev_row": prev}
            for k, v in values.items():
                info[k].append(v)
            ep.last_row, ep.length = row, ep.length + 1
            ep.total_reward += float(t.reward)
            ep.interventions += int(t.intervened)
            ep.end_time = t.wall_time
            ep.pending_next, ep.tail_saved = t.next_obs, False
            touched[id(ep)] = ep
        for ep in touched.values():  # own copies, as the spec says: the caller's may change
            assert ep.pending_next is not None
            ep.pending_next = {k: np.array(ep.pending_next[k], spec[k].dtype) for k in self.keys}
        specs = self.storage.tables["step_info"].specs
        steps = {f"obs/{k}": [t.obs[k] for t in transitions] for k in self.keys}
        steps["action"] = [t.action for t in transitions]
        self.storage.stage("steps", steps)  # copied once, straight into the table's rows
        self.storage.stage("step_info", {k: np.asarray(v, specs[k].dtype) for k, v in info.items()})

    def _episode_for(self, t: Transition, task: str | None) -> OpenEpisode:
        ep = self.open.get(t.robot_id)
        if ep is None:
            ep = OpenEpisode(self.next_episode, _index(self.robots, t.robot_id),
                             _index(self.tasks, task or self.default_task), self.next_row,
                             source_episode=t.episode_id, start_time=t.wall_time)
            self.next_episode += 1
            self.open[t.robot_id] = ep
        return ep

    def _stage_tail(self, row: int, obs: Observation) -> None:
        cols = {f"obs/{k}": obs[k][None] for k in self.keys}
        cols["row"] = np.array([row], np.int64)
        self.storage.stage("tails", cols)

    def end_episode(self, success: bool, robot_id: str | None = None) -> None:
        """Close the open episode of `robot_id` (or the only open one)."""
        if robot_id is None:
            if len(self.open) != 1:
                raise StorageError(f"end_episode: {len(self.open)} robots have open episodes "
                                   f"({sorted(self.open)}); pass robot_id")
            robot_id = next(iter(self.open))
        ep = self.open.pop(robot_id, None)
        if ep is None:
            raise StorageError(f"end_episode: robot {robot_id!r} has no open episode; "
                               "append its transitions first")
        if ep.pending_next is not None and not ep.tail_saved:
            self._stage_tail(ep.last_row, ep.pending_next)
        values = {"episode_id": ep.episode_id, "robot_id": ep.robot, "task": ep.task,
                  "first_row": ep.first_row, "last_row": ep.last_row, "length": ep.length,
                  "success": success, "total_reward": ep.total_reward,
                  "interventions": ep.interventions, "source_episode": ep.source_episode,
                  "start_time": ep.start_time, "end_time": ep.end_time}
        specs = self.storage.tables["episodes"].specs
        self.storage.stage("episodes", {k: np.array([v], specs[k].dtype)
                                        for k, v in values.items()})

    def open_tails(self) -> dict[int, Observation]:
        """The next observation of each open episode's last row that no tail holds yet: the
        storage keeps them durable at every commit, outside the tails table."""
        return {ep.last_row: ep.pending_next for ep in self.open.values()
                if ep.pending_next is not None and not ep.tail_saved}


def recover_open_episodes(info: dict[str, np.ndarray], ended: np.ndarray, robots: list[str],
                          tails: dict[int, Observation], open_tails: dict[int, Observation]
                          ) -> dict[str, OpenEpisode]:
    """Rebuild the open episodes of a reopened buffer from its committed rows; the next
    observation of each one's last row comes from `tails` (the table) or `open_tails`."""
    open_eps: dict[str, OpenEpisode] = {}
    ids = info["episode_id"]
    for episode in np.setdiff1d(np.unique(ids[ids >= 0]), ended):  # (-1: rows lost to damage)
        rows = np.flatnonzero(ids == episode)
        first, last = int(rows[0]), int(rows[-1])
        robot = int(info["robot_id"][first])
        open_eps[robots[robot]] = OpenEpisode(
            int(episode), robot, int(info["task"][first]), first, last, len(rows),
            float(info["reward"][rows].sum()), int(info["intervened"][rows].sum()),
            start_time=float(info["timestamp"][first]), end_time=float(info["timestamp"][last]),
            pending_next=tails.get(last, open_tails.get(last)), tail_saved=last in tails)
    return open_eps
