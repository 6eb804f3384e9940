"""Can the pixel path see the task? Frozen camera maps probed for where the cube and the goal are.

`task=pick_cube_pixels algo=rlpd_frozen` as a user runs it: the session's robot (both cameras,
randomized scene), driven by uniform random actions, so the wrist camera sees the scene from many
poses and the arm's state says nothing of where the objects are (an expert's arm heading for the
cube would tell). What the learner trains on an encoder's frozen maps (a keypoint head per
camera, and an MLP on the keypoints and the robot's 1-D state) is fitted to the cube's and the
goal's positions (labels read from the sim's task state, never shown to a policy) on some
episodes and scored on others: mean absolute error in cm, and that error over the error of the
same fit on the state alone (the baseline, as a ratio: 1.0, the cameras add nothing). Encoders:
a random trunk (the floor) and the trunk a run pretrains by behaviour cloning on its 20 demos
(`algo.features.pretrain_steps`); `--encoder PATH` adds a saved one (a run's encoder.npz). The
same again with the scene's randomization off tells what the colours cost from what the pixels
cannot show at all. A diagnostic: it takes minutes where a pixel RL run takes an hour, and says
whether the features or the learning fail.

    MUJOCO_GL=egl python -m benchmarks.encoder_probe [--quick] [--json PATH] [--encoder PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import print_table, report
from policies import EncoderConfig, FrozenCameraFeatures, PretrainConfig, pretrain_bc
from policies.encoders import KeypointHead
from policies.features import feature_key
from policies.networks import mlp
from robot_rl.config import compose_session
from robot_rl.core import ArraySpec, DictSpec
from robot_rl.runtime.build import build_robot
from robot_rl.runtime.frozen_features import FeatureObserver
from sim.experts import EXPERTS

LABELS = ("cube x", "cube y", "goal x", "goal y", "goal z", "cube-gripper x", "cube-gripper y",
          "cube-gripper z")
PROBE_BATCH = 64
MAP_SLICE = 256  # frames through a trunk at a time
PROBE_EVERY = 2  # of the probe's episodes, every second step's frames


@dataclass
class Frames:
    """Camera frames with their labels, the 1-D state and the action taken (for pretraining)."""

    cameras: list[str]
    images: dict[str, np.ndarray]
    labels: np.ndarray
    state: np.ndarray
    actions: np.ndarray


def collect(overrides: Sequence[str], episodes: int, seed: int, skill: float | None,
            every: int = 1) -> Frames:
    """`episodes` on the configured robot, scenes drawn from `seed`, driven by the scripted
    expert at `skill`, or by uniform random actions where `skill` is None (then the arm's state
    says nothing of where the objects are); every `every`-th step's frames kept."""
    cfg = compose_session([*overrides, f"seed={seed}"])
    arm, robot = build_robot(cfg)
    cameras = list(cfg.algo.features.cameras)
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    labels, states, actions = [], [], []
    rng = np.random.default_rng(seed)
    robot.connect()
    try:
        for episode in range(episodes):
            obs = robot.reset()
            expert = (EXPERTS.get(cfg.task.name)(arm, skill=skill, seed=seed * 1000 + episode)
                      if skill is not None else None)
            for step in range(int(cfg.task.max_steps)):
                state = arm.task_state()
                cube, goal = state["object_pos"], state["goal_pos"]
                action = (expert.act() if expert is not None else
                          rng.uniform(-1.0, 1.0, arm.action_spec.shape).astype(np.float32))
                if step % every == 0:
                    for cam in cameras:
                        images[cam].append(obs[cam])
                    labels.append(np.concatenate([cube[:2], goal, cube - arm.ee_pos()]))
                    states.append(np.concatenate(
                        [np.asarray(v, np.float32).ravel() for v in obs.values()
                         if np.ndim(v) == 1]))
                    actions.append(action)
                robot.send_action(action)
                obs = robot.get_observation()
                if arm.outcome().success:
                    break
    finally:
        robot.disconnect()
    return Frames(cameras, {c: np.stack(v) for c, v in images.items()}, np.stack(labels),
                  np.stack(states), np.stack(actions))


def maps_of(features: FrozenCameraFeatures, images: dict[str, np.ndarray]
            ) -> dict[str, torch.Tensor]:
    """The frozen maps of every frame, a slice at a time (all at once would take gigabytes)."""
    n = len(next(iter(images.values())))
    parts = [features.features({c: v[i:i + MAP_SLICE] for c, v in images.items()})
             for i in range(0, n, MAP_SLICE)]
    return {k: torch.as_tensor(np.concatenate([p[k] for p in parts])).float() for k in parts[0]}


def probe(features: FrozenCameraFeatures | None, train: Frames, test: Frames, steps: int,
          seed: int) -> np.ndarray:
    """What the learner trains, fitted on `train` to its labels: keypoint heads on each camera's
    maps (none when `features` is None) and an MLP on them and the robot's 1-D state; per label,
    the mean absolute error on `test`."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    labels, state = train.labels, train.state
    shift, spread = state.mean(0), state.std(0) + 1e-3
    states = [torch.as_tensor((s - shift) / spread) for s in (state, test.state)]
    maps = ([maps_of(features, f.images) for f in (train, test)] if features is not None
            else [{}, {}])
    keypoints = EncoderConfig().keypoints
    heads = nn.ModuleDict({cam: KeypointHead(features.config.feature_dim, keypoints)
                           for cam in train.cameras} if features is not None else {})
    net = mlp([2 * keypoints * len(heads) + state.shape[1], 256, 256, labels.shape[1]])
    opt = torch.optim.Adam([*heads.parameters(), *net.parameters()], lr=1e-3)
    mean, scale = labels.mean(0), labels.std(0) + 1e-6
    target = torch.as_tensor((labels - mean) / scale, dtype=torch.float32)

    def predict(part: int, rows: torch.Tensor | slice) -> torch.Tensor:
        seen = [heads[c](maps[part][feature_key(c)][rows]) for c in heads]
        return net(torch.cat([*seen, states[part][rows]], -1))

    for _ in range(steps):
        rows = torch.randint(0, len(target), (PROBE_BATCH,), generator=gen)
        loss = nn.functional.mse_loss(predict(0, rows), target[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        guess = predict(1, slice(None)).numpy() * scale + mean
    return np.abs(guess - test.labels).mean(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--encoder", type=Path, default=None,
                        help="a saved encoder (.npz) to probe beside the others")
    args = parser.parse_args()
    quick = ("robot.image_size=32", "task.max_steps=10") if args.quick else ()
    base = ("task=pick_cube_pixels", "algo=rlpd_frozen", *quick)
    fit_episodes, test_episodes, demo_episodes, steps = (
        (3, 1, 2, 20) if args.quick else (150, 30, 20, 3000))
    cfg = compose_session(list(base))
    features_cfg = cfg.algo.features
    pretrain_steps = 20 if args.quick else int(features_cfg.pretrain_steps)
    demos = collect(base, demo_episodes, seed=1, skill=1.0)
    torch.manual_seed(0)  # the random trunk's weights
    observer = FeatureObserver(features_cfg, DictSpec(
        {c: ArraySpec(demos.images[c].shape[1:], "uint8") for c in demos.cameras}))
    trained, _ = pretrain_bc(demos.images, demos.state, demos.actions, observer.encoder_config,
                             PretrainConfig(steps=pretrain_steps, seed=0))
    encoders = {"random trunk": observer.features,
                f"pretrained on {demo_episodes} demos": trained}
    if args.encoder is not None:
        encoders[str(args.encoder)] = FrozenCameraFeatures.load(args.encoder)
    results: dict[str, Any] = {"labels": list(LABELS), "fit_episodes": fit_episodes,
                               "test_episodes": test_episodes, "probe_steps": steps, "scenes": {}}
    rows = []
    for scene, extra in (("randomized", ()), ("fixed", ("robot.randomize.enabled=false",))):
        fit = collect((*base, *extra), fit_episodes, 2, None, PROBE_EVERY)
        test = collect((*base, *extra), test_episodes, 3, None, PROBE_EVERY)
        blind = probe(None, fit, test, steps, seed=0)
        found = results["scenes"][scene] = {
            "fit_frames": len(fit.labels), "test_frames": len(test.labels),
            "mean_answer_cm": (np.abs(fit.labels.mean(0) - test.labels).mean(0) * 100)
            .round(2).tolist(),
            "state_only_cm": (blind * 100).round(2).tolist(), "encoders": {}}
        rows.append([scene, "state only (baseline)", *[f"{e:.1f}" for e in blind * 100]])
        for name, features in encoders.items():
            error = probe(features, fit, test, steps, seed=0)
            ratio = error / np.maximum(blind, 1e-9)
            found["encoders"][name] = {"error_cm": (error * 100).round(2).tolist(),
                                       "error_over_state_only": ratio.round(3).tolist()}
            rows.append([scene, name, *[f"{e:.1f} ({r:.2f})" for e, r in zip(
                error * 100, ratio, strict=True)]])
    print_table(["scene", "encoder", *LABELS], rows,
                title="frozen maps probed on held-out episodes: error cm (over the state "
                      "alone's)")
    return report("encoder_probe", results, [], args.json, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
