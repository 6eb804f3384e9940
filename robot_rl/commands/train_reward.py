"""`robot-rl train-reward`: fit a success classifier to the labelled frames of a run.

Labels come from the run's buffer: a step whose next state ended the episode as a success
(`terminated`, set by the task rule or a person's label) is a success frame, every other step
a failure frame. Camera frames are read from the buffer, or re-rendered from the recorded
states when the run stored none. Whole episodes are held out to measure accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from buffer import ZarrStorage
from buffer.episodes import EpisodeReader
from policies.encoders import EncoderConfig
from policies.reward_classifier import ClassifierConfig, scores, train_success_classifier
from robot_rl.commands import COMMANDS, Command
from robot_rl.core import ConfigError, RunDirError
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.run_dir import RunDir


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

    def run(self, args: argparse.Namespace) -> int:
        run = RunDir(args.run_dir).require()
        if not 0.0 <= args.holdout < 1.0:
            raise ConfigError(f"--holdout must be in [0, 1), got {args.holdout}")
        frames, labels, episode_ids = labelled_frames(run, args.camera, args.size)
        episodes = np.unique(episode_ids)
        rng = np.random.default_rng(args.seed)
        held = rng.choice(episodes, int(round(len(episodes) * args.holdout)), replace=False)
        test = np.isin(episode_ids, held)
        print(f"{len(labels)} frames from {len(episodes)} episodes: {int(labels.sum())} successes; "
              f"{len(held)} episodes held out", flush=True)
        model, losses = train_success_classifier(
            {c: f[~test] for c, f in frames.items()}, labels[~test],
            EncoderConfig(cameras=tuple(args.camera)),
            ClassifierConfig(steps=args.steps, seed=args.seed),
        )
        print(f"final training loss {np.mean(losses[-50:]):.4f}")
        if test.any():
            result = scores(model, {c: f[test] for c, f in frames.items()}, labels[test],
                            args.threshold)
            print(f"held-out on {int(test.sum())} frames: " +
                  "  ".join(f"{k} {v:.3f}" for k, v in result.items()))
        out = args.out or run.root / "reward.npz"
        model.save(out)
        print(f"classifier -> {out}")
        return 0
