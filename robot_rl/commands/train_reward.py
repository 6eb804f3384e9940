"""`robot-rl train-reward`: fit a success classifier to the labelled frames of a run.

Labels come from the run's buffer: a step whose next state ended the episode as a success
(`terminated`, set by the task rule or a person's label) is a success frame, every other step
a failure frame. Camera frames are read from the buffer, or re-rendered from the recorded
states when the run stored none. Whole episodes are held out to measure accuracy.

`--review POLICY_RUN` first does one turn of HIL-SERL's loop: the policy that run has learned
acts on fresh episodes judged by the current classifier, and every success it claims that the
task rule does not confirm (the task rule stands in for the person reviewing, on a sim arm) is
added to the run's buffer as a failed episode: negatives for this fit and every later one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from buffer import ReplayBuffer, ZarrStorage
from buffer.episodes import EpisodeReader
from buffer.zarr_storage import stored_specs
from policies.encoders import EncoderConfig
from policies.reward_classifier import (
    ClassifierConfig,
    SuccessClassifier,
    scores,
    train_success_classifier,
)
from policies.rewards import ClassifierReward
from robot_rl.commands import COMMANDS, Command
from robot_rl.core import ConfigError, Episode, Observation, RunDirError
from robot_rl.runtime.actor import ActionSource, Actor, ActorConfig, steps
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.run_policy import RunPolicy
from sim import MujocoArm

REVIEW_SEED = 2_000_000  # review episode i draws its scene from REVIEW_SEED + 1000 * seed + i


def labelled_frames(
    run: RunDir, cameras: list[str], size: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(frames per camera, success labels, episode ids) of each step of every ended episode."""
    reader = EpisodeReader(ZarrStorage.open_existing(run.buffer))
    episodes = list(reader)
    if not episodes:
        raise RunDirError(f"{run.root} has no ended episodes to learn success from")
    after = [ep.next_obs for ep in episodes]
    labels = np.concatenate([ep.info["terminated"] for ep in episodes]).astype(bool)
    episode_ids = np.concatenate([ep.info["episode_id"] for ep in episodes])
    stored = [c for c in cameras if c in reader.storage.obs_spec]
    frames = {c: np.concatenate([obs[c] for obs in after]) for c in stored}
    missing = [c for c in cameras if c not in stored]
    if missing:
        arm, _ = build_robot(run.load_config())
        arm.connect()
        keys = [k for k, s in reader.storage.obs_spec.items() if len(s.shape) == 1]
        try:
            for cam in missing:
                frames[cam] = np.stack([
                    arm.render_state({k: obs[k][i] for k in keys}, cam, size, size)
                    for obs in after for i in range(len(obs[keys[0]]))
                ])
        finally:
            arm.disconnect()
    return frames, labels, episode_ids


def held_out(episode_ids: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Which frames belong to the `share` of whole episodes kept out of training (seeded)."""
    episodes = np.unique(episode_ids)
    rng = np.random.default_rng(seed)
    held = rng.choice(episodes, int(round(len(episodes) * share)), replace=False)
    return np.isin(episode_ids, held)


class LearnedPolicy(ActionSource):
    """A run's learned policy acting as it does in training (sampled actions)."""

    def __init__(self, learned: RunPolicy) -> None:
        self.learned = learned

    async def act(self, obs: Observation) -> np.ndarray | None:
        return self.learned.policy.act(self.learned.observe(obs))


@dataclass(frozen=True)
class Review:
    """What one review found: episodes acted, successes the classifier claimed, how many of
    those the task rule did not confirm, and the frames added as negatives."""

    episodes: int
    claims: int
    false: int
    frames: int


def review_false_successes(labelled: RunDir, policy_run: RunDir, classifier: Path,
                           episodes: int, threshold: float, seed: int) -> Review:
    """`policy_run`'s newest policy acts `episodes` episodes on its own robot, ended by the
    classifier's verdict; each claimed success the task rule does not confirm goes into
    `labelled`'s buffer as a failed episode (every frame of it a negative)."""
    learned = RunPolicy(policy_run)
    learned.load()
    arm = learned.arm
    if not isinstance(arm, MujocoArm):
        raise ConfigError(f"--review needs a sim arm, whose task rule stands in for the person "
                          f"reviewing; {policy_run.root} runs {type(arm).__name__}")
    stored_obs, _ = stored_specs(labelled.buffer)
    if stored_obs != arm.observation_spec:
        raise ConfigError(f"{policy_run.root}'s robot observes other fields than {labelled.root}'s "
                          "buffer holds: review with a run of the same robot.cameras and "
                          "robot.image_size")
    reward = ClassifierReward(classifier, threshold)
    actor = Actor(learned.robot, reward, ActorConfig(
        max_steps=int(learned.cfg.task.max_steps), task_reward="sparse"), outcomes=arm)
    source, claims, false, frames = LearnedPolicy(learned), 0, 0, 0
    learned.robot.connect()
    try:
        with ReplayBuffer(labelled.buffer) as buffer:
            for i in range(episodes):
                arm.seed(REVIEW_SEED + 1000 * seed + i)
                acted = list(steps(actor.episode(source, i)))
                claims += actor.success
                if not actor.success or actor.task_success:
                    continue
                false += 1
                frames += len(acted)
                negatives = [replace(t, reward=0.0, terminated=False,
                                     truncated=t is acted[-1], episode_id=buffer.num_episodes)
                             for t in acted]
                buffer.add_episode(Episode(buffer.num_episodes, arm.robot_id,
                                           str(learned.cfg.task.name), negatives, False))
    finally:
        learned.robot.disconnect()
    return Review(episodes, claims, false, frames)


@COMMANDS.register("train-reward")
class TrainReward(Command):
    help = "Train a success classifier on a run's labelled frames (for reward=classifier)."
    example = "robot-rl train-reward runs/pick --camera side_cam --out runs/pick/reward.npz"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path,
                            help="run whose ended episodes give the labelled frames")
        parser.add_argument("--camera", action="append", required=True,
                            help="camera to classify from (repeat for several)")
        parser.add_argument("--out", type=Path, default=None,
                            help="where to write the classifier (default: <run_dir>/reward.npz)")
        parser.add_argument("--size", type=int, default=64, help="render size when re-rendering")
        parser.add_argument("--steps", type=int, default=1500, help="gradient steps")
        parser.add_argument("--holdout", type=float, default=0.2,
                            help="share of episodes held out to measure accuracy")
        parser.add_argument("--threshold", type=float, default=0.5,
                            help="score above which a frame counts as a success (held-out report)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split "
                            "and of training")
        parser.add_argument("--review", type=Path, default=None, metavar="POLICY_RUN",
                            help="first add the false successes of this run's learned policy, "
                                 "judged by the current classifier (--out), as negatives; then "
                                 "refit that classifier for --steps more steps")
        parser.add_argument("--review-episodes", type=int, default=30,
                            help="episodes the reviewed policy acts (with --review)")

    def run(self, args: argparse.Namespace) -> int:
        run = RunDir(args.run_dir).require()
        if not 0.0 <= args.holdout < 1.0:
            raise ConfigError(f"--holdout must be in [0, 1), got {args.holdout}")
        out = args.out or run.root / "reward.npz"
        if args.review is not None:
            if not out.exists():
                raise ConfigError(f"--review judges the policy with the current classifier, and "
                                  f"there is none at {out} yet: fit one first without --review")
            found = review_false_successes(run, RunDir(args.review).require(), out,
                                           args.review_episodes, args.threshold, args.seed)
            print(f"review of {args.review}: {found.claims} claimed successes in "
                  f"{found.episodes} episodes, {found.false} false; {found.frames} frames "
                  f"added to {run.buffer} as negatives", flush=True)
        frames, labels, episode_ids = labelled_frames(run, args.camera, args.size)
        test = held_out(episode_ids, args.holdout, args.seed)
        print(f"{len(labels)} frames from {len(np.unique(episode_ids))} episodes: "
              f"{int(labels.sum())} successes; {len(np.unique(episode_ids[test]))} episodes held "
              "out", flush=True)
        model, losses = train_success_classifier(
            {c: f[~test] for c, f in frames.items()}, labels[~test],
            EncoderConfig(cameras=tuple(args.camera)),
            ClassifierConfig(steps=args.steps, seed=args.seed),
            start=SuccessClassifier.load(out) if args.review is not None else None,
        )
        print(f"final training loss {np.mean(losses[-50:]):.4f}")
        if test.any():
            result = scores(model, {c: f[test] for c, f in frames.items()}, labels[test],
                            args.threshold)
            print(f"held-out on {int(test.sum())} frames: " +
                  "  ".join(f"{k} {v:.3f}" for k, v in result.items()))
        model.save(out)
        print(f"classifier -> {out}")
        return 0
