"""`robot-rl record-demos`: scripted-expert episodes, stored with source DEMO in a run's buffer."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from buffer import ReplayBuffer
from hal import SafeRobot
from robot_rl.commands import COMMANDS, Command
from robot_rl.config import compose_session
from robot_rl.core import ConfigError, Episode, RegistryError, Source, Transition
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session import build_robot, default_run_dir
from sim import MujocoArm
from sim.experts import EXPERTS, Expert

OWN_KEYS = {"episodes": int, "skill": float, "into": str}  # this command's own key=value args
TARGETS = ("buffer", "demos")  # into=buffer: the run's buffer; into=demos: RLPD's demo side


def split_overrides(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Separate `episodes=N skill=S into=buffer|demos` from the Hydra overrides, clearly."""
    own: dict[str, Any] = {"episodes": 20, "skill": 1.0, "into": "buffer"}
    rest = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in OWN_KEYS:
            rest.append(item)
            continue
        try:
            own[key] = OWN_KEYS[key](value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if own["episodes"] < 1:
        raise ConfigError(f"episodes must be at least 1, got {own['episodes']}")
    if not 0.0 <= own["skill"] <= 1.0:
        raise ConfigError(f"skill must be in [0, 1], got {own['skill']}")
    if own["into"] not in TARGETS:
        raise ConfigError(f"into must be one of {', '.join(TARGETS)}, got {own['into']!r}")
    return own, rest


@COMMANDS.register("record-demos")
class RecordDemos(Command):
    help = ("Record scripted-expert episodes (source demo) into a run's buffer, or with "
            "into=demos into its RLPD demo side.")
    example = "robot-rl record-demos task=pick_cube episodes=20 skill=0.9 into=demos run.dir=runs/p"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("overrides", nargs="*",
                            help="episodes=N, skill=S in [0, 1], and Hydra overrides key=value")

    def run(self, args: argparse.Namespace) -> int:
        own, overrides = split_overrides(args.overrides)
        cfg = compose_session(overrides)
        run = RunDir(Path(cfg.run.dir) if cfg.run.dir else default_run_dir(cfg))
        if run.exists and run.load_config().task.name != cfg.task.name:
            raise ConfigError(f"{run.root} holds task {run.load_config().task.name!r}; "
                              f"record {cfg.task.name!r} demos into another run.dir")
        try:
            expert_cls = EXPERTS.get(cfg.task.name)
        except RegistryError as exc:
            raise ConfigError(str(exc)) from None
        arm, robot = build_robot(cfg)
        cfg.run.dir = str(run.root)
        if not run.exists:
            run.save_config(cfg)
        robot.connect()
        try:
            path = run.demos if own["into"] == "demos" else run.buffer
            buffer = ReplayBuffer(path, robot.observation_spec, robot.action_spec)
            expert = expert_cls(arm, skill=own["skill"], seed=cfg.seed)
            wins = 0
            for _ in range(int(own["episodes"])):
                episode = record_episode(arm, robot, expert, buffer.num_episodes, cfg)
                buffer.add_episode(episode)
                wins += episode.success
        finally:
            robot.disconnect()
        print(f"recorded {int(own['episodes'])} {cfg.task.name} demos (skill {own['skill']}): "
              f"{wins} successful; {path} now holds {buffer.num_episodes} episodes, "
              f"{len(buffer)} steps")
        return 0


def record_episode(
    arm: MujocoArm, robot: SafeRobot, expert: Expert, episode_id: int, cfg: DictConfig
) -> Episode:
    """One expert episode through the safety layer, every step marked as a demo."""
    episode = Episode(episode_id, robot.robot_id, cfg.task.name)
    obs = robot.reset()
    expert.reset()
    for step in range(cfg.task.max_steps):
        applied = robot.send_action(expert.act())
        next_obs = robot.get_observation()
        outcome = arm.outcome()
        terminated = outcome.success
        truncated = not terminated and (step + 1 == cfg.task.max_steps or not robot.health().ok)
        episode.transitions.append(Transition(
            obs=obs, action=applied, reward=outcome.reward(cfg.task.reward), next_obs=next_obs,
            terminated=terminated, truncated=truncated, source=Source.DEMO,
            robot_id=robot.robot_id, episode_id=episode_id, step=step, wall_time=time.time(),
            mono_time=time.monotonic(),
        ))
        obs = next_obs
        if terminated or truncated:
            break
    episode.success = episode.transitions[-1].terminated
    return episode
