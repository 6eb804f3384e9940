"""The run's demo side kept in step with its buffer: every ended episode's demo-side steps (a
person's or a scripted intervener's takeovers) are copied there, and the demo side's commit record
says how many of the buffer's episodes it has seen. The two stores commit one after the other; a
crash between them is repaired when the session starts again, from the buffer itself."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from buffer import ReplayBuffer, ZarrStorage
from buffer.episodes import EpisodeData, EpisodeReader
from robot_rl.core import Episode, Source, Transition, is_demo_side

log = logging.getLogger(__name__)
MIRRORED = "mirrored_episodes"  # demo side's commit meta: buffer episodes it has seen


def demo_side_steps(ep: EpisodeData) -> list[Transition]:
    """The demo-side transitions of a stored episode (its takeovers and demonstrations)."""
    info, after = ep.info, ep.next_obs
    return [Transition(
        {k: v[i] for k, v in ep.obs.items()}, ep.action[i], float(info["reward"][i]),
        {k: v[i] for k, v in after.items()}, bool(info["terminated"][i]),
        bool(info["truncated"][i]), bool(info["intervened"][i]), Source(int(info["source"][i])),
        int(info["policy_version"][i]), robot_id=ep.robot, episode_id=ep.episode_id,
        step=int(info["step"][i]), wall_time=float(info["timestamp"][i]))
        for i in range(ep.length)
        if is_demo_side(Source(int(info["source"][i])), bool(info["intervened"][i]))]


class DemoSideMirror:
    """Copies demo-side steps into `demos`, `add` after each buffer commit that ended episodes."""

    def __init__(self, demos: ReplayBuffer, buffer_path: Path, buffer_episodes: int) -> None:
        self.demos = demos
        self._reconcile(buffer_path, buffer_episodes)

    @property
    def mark(self) -> int:
        return int(self.demos.commit_meta.get(MIRRORED, 0))

    def add(self, position: int, episode: Episode) -> None:
        """Episode `position` of the buffer ended with these demo-side steps (maybe none)."""
        if not episode.transitions or position < self.mark:
            return
        self.demos.append(episode.transitions, task=episode.task)
        self.demos.end_episode(episode.success, robot_id=episode.robot_id)
        self.demos.commit(meta={**self.demos.commit_meta, MIRRORED: position + 1})

    def close(self) -> None:
        self.demos.close()

    def _reconcile(self, buffer_path: Path, buffer_episodes: int) -> None:
        """Copy what a crash between the two commits kept from the demo side."""
        if MIRRORED not in self.demos.commit_meta:  # a run from before the mark: trust it
            self.demos.commit(meta={**self.demos.commit_meta, MIRRORED: buffer_episodes})
            return
        if self.mark >= buffer_episodes:
            return
        reader = EpisodeReader(ZarrStorage.open_existing(buffer_path))
        info, table = reader.info, reader.episodes
        demo_rows = np.array([is_demo_side(Source(int(s)), bool(i))
                              for s, i in zip(info["source"], info["intervened"], strict=True)],
                             dtype=bool)
        for position in range(self.mark, min(buffer_episodes, len(reader))):
            rows = info["episode_id"] == table["episode_id"][position]
            if demo_rows[rows].any():
                ep = reader.read(position)
                self.add(position, Episode(ep.episode_id, ep.robot, ep.task,
                                           demo_side_steps(ep), ep.success))
                log.warning("demo side: copied the takeovers of buffer episode %d, which a crash "
                            "kept from it", position)
