"""`robot-rl record-demos`: demonstrations by a scripted expert or a person at a teleop device,
stored with source DEMO in a run's buffer."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from buffer import ReplayBuffer
from hal import Robot, SafeRobot, Teleop, task_outcomes
from policies.rewards import Reward, RewardContext, RewardOutput, TaskRuleReward
from robot_rl.commands import COMMANDS, Command
from robot_rl.commands.train import resolve_config
from robot_rl.core import ConfigError, Episode, RegistryError, SafetyError, Source
from robot_rl.runtime.actor import Actor, ActorConfig, Nobody, ScriptedDriver, steps
from robot_rl.runtime.build import build_robot, build_teleop
from sim.experts import EXPERTS, Expert

# this command's own key=value args
OWN_KEYS = {"episodes": int, "skill": float, "miss": float, "into": str}
TARGETS = ("buffer", "demos")  # into=buffer: the run's buffer; into=demos: RLPD's demo side


def split_overrides(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Separate `episodes=N skill=S miss=M into=buffer|demos` from the Hydra overrides."""
    own: dict[str, Any] = {"episodes": 20, "skill": 1.0, "miss": 0.0, "into": "buffer"}
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
    if own["miss"] < 0.0:
        raise ConfigError(f"miss must be a distance >= 0 in metres, got {own['miss']}")
    if own["into"] not in TARGETS:
        raise ConfigError(f"into must be one of {', '.join(TARGETS)}, got {own['into']!r}")
    return own, rest


@COMMANDS.register("record-demos")
class RecordDemos(Command):
    help = ("Record demonstrations (source demo) by the task's scripted expert, or by a person "
            "with teleop=keyboard, into a run's buffer, or with into=demos its RLPD demo side.")
    example = "robot-rl record-demos task=pick_cube episodes=20 skill=0.9 into=demos run.dir=runs/p"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("overrides", nargs="*",
                            help="episodes=N, skill=S in [0, 1], miss=M metres (near misses on "
                                 "purpose: negatives for train-reward), and Hydra overrides")

    def run(self, args: argparse.Namespace) -> int:
        own, overrides = split_overrides(args.overrides)
        run, cfg = resolve_config(overrides)  # an existing run: its own task, algo, robot
        lock = run.writer_lock()
        if run.exists:
            lock.acquire()  # not while a session or gateway writes this run
        arm, robot = build_robot(cfg)
        record, who, teleop = self._demonstrator(cfg, arm, robot, own["skill"], own["miss"])
        path = run.demos if own["into"] == "demos" else run.buffer
        wins = recorded = 0
        buffer: ReplayBuffer | None = None
        try:
            lock.acquire()
            if not run.exists:
                run.save_config(cfg)
            robot.connect()
            buffer = ReplayBuffer(path, robot.observation_spec, robot.action_spec)
            for _ in range(int(own["episodes"])):
                episode = record(buffer.num_episodes)
                if episode.transitions:  # empty: stopped before anyone drove
                    buffer.add_episode(episode)
                    recorded += 1
                    wins += episode.success
                if robot.estopped:
                    raise SafetyError(f"stopped by the e-stop: the robot holds; the {recorded} "
                                      f"demos recorded before it are saved in {path}")
        finally:
            if teleop is not None:
                teleop.close()
            robot.disconnect()
            if buffer is not None:
                buffer.close()  # its writer lock too: the next writer may be this process
            lock.release()
        print(f"recorded {recorded} {cfg.task.name} demos ({who}): {wins} successful; {path} now "
              f"holds {buffer.num_episodes} episodes, {len(buffer)} steps")
        return 0

    @staticmethod
    def _demonstrator(cfg: DictConfig, arm: Robot, robot: SafeRobot, skill: float,
                      miss: float) -> tuple[Callable[[int], Episode], str, Teleop | None]:
        """Who drives: the person at `teleop=` (paced at the control rate), else the task's
        scripted expert at `skill`, missing the goal by `miss` metres."""
        teleop = build_teleop(cfg, arm)
        if teleop is not None:
            print(f"recording from teleop={cfg.teleop.name}: take control to start a demo; it "
                  "ends on success, on y / n, or after task.max_steps", file=sys.stderr)
            period = 1.0 / float(cfg.robot.control_hz) if teleop.realtime else 0.0
            actor = demo_actor(arm, robot, teleop, cfg, period)
            return (lambda eid: record_demo(actor, eid, cfg.task.name),
                    f"teleop={cfg.teleop.name}", teleop)
        try:
            expert = EXPERTS.get(cfg.task.name)(arm, skill=skill, seed=cfg.seed, miss=miss)
        except RegistryError as exc:
            raise ConfigError(f"{exc}: record this task's demos with teleop=keyboard") from None
        who = f"skill {skill}" + (f", missing by {miss} m" if miss else "")
        return (lambda eid: record_episode(arm, robot, expert, eid, cfg), who, None)


class DemoVerdict(Reward):
    """A demonstration's score: the task rule's reward; a person's label ends it (y: success,
    terminated; n: failure, truncated), else the rule's success does."""

    def __init__(self) -> None:
        self.rule = TaskRuleReward()

    def __call__(self, ctx: RewardContext) -> RewardOutput:
        scored = self.rule(ctx)
        if ctx.label is None:
            return scored
        return RewardOutput(scored.reward, ctx.label, terminate=ctx.label, truncate=not ctx.label)


def demo_actor(arm: Robot, robot: SafeRobot, driver: Teleop, cfg: DictConfig,
               period: float = 0.0) -> Actor:
    """The actor recording `driver`'s demonstrations: its steps are demos, steps where nobody
    drives (a person who has not taken control yet) hold the robot and are not recorded.
    `period` paces the loop (1 / control_hz for a person; 0 for a script)."""
    return Actor(robot, DemoVerdict(), ActorConfig(
        max_steps=int(cfg.task.max_steps), task_reward=cfg.task.reward, period=period,
        takeover_source=Source.DEMO, record_holds=False), outcomes=task_outcomes(arm),
        teleop=driver)


def record_demo(actor: Actor, episode_id: int, task: str) -> Episode:
    """One demonstration through the safety layer. It ends on the task's success, on a person's
    label (y: success, n: failure), on the e-stop, or after `task.max_steps` recorded steps."""
    episode = Episode(episode_id, actor.robot.robot_id, task,
                      list(steps(actor.episode(Nobody(), episode_id))))
    episode.success = bool(episode.transitions) and episode.transitions[-1].terminated
    return episode


def record_episode(
    arm: Robot, robot: SafeRobot, expert: Expert, episode_id: int, cfg: DictConfig
) -> Episode:
    """One scripted-expert episode through the safety layer, every step marked as a demo."""
    expert.reset()
    return record_demo(demo_actor(arm, robot, ScriptedDriver(expert.act), cfg), episode_id,
                       cfg.task.name)
