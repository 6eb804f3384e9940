"""A run's learned policy outside its session: the run's own robot, observation map (frozen
camera features included) and learner, loaded from any of its checkpoints, the way a resume
loads them. Evaluations and reviews act with it; nothing here writes to the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hal import Robot, SafeRobot
from policies import Policy
from robot_rl.core import ConfigError, Observation
from robot_rl.runtime.build import build_algorithm, build_robot
from robot_rl.runtime.checkpoint import load_checkpoint, load_latest
from robot_rl.runtime.frozen_features import FeatureObserver
from robot_rl.runtime.run_dir import RunDir


class RunPolicy:
    """What `run` learned, ready to act on its own robot (built anew from its config)."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.cfg = cfg = run.load_config()
        self.arm: Robot
        self.robot: SafeRobot
        self.arm, self.robot = build_robot(cfg)
        obs_spec = self.arm.observation_spec
        self.observer: FeatureObserver | None = None
        if cfg.algo.features.cameras:
            self.observer = FeatureObserver(cfg.algo.features, obs_spec)
            self.observer.load(self.observer.weights_path(run))
            obs_spec = self.observer.spec
        self.algo = build_algorithm(cfg, obs_spec, self.arm.action_spec)

    @property
    def policy(self) -> Policy:
        return self.algo.policy

    def observe(self, raw: Observation) -> Observation:
        """A raw observation as the policy sees it (frozen camera features where configured)."""
        return self.observer(raw) if self.observer is not None else raw

    def load(self, checkpoint: Path | None = None) -> dict[str, Any]:
        """Take the learner's state from `checkpoint` (default: the newest); its counters."""
        state = (load_checkpoint(checkpoint) if checkpoint is not None
                 else load_latest(self.run.checkpoints))
        if state is None:
            raise ConfigError(f"{self.run.root} has no checkpoint yet: train it first")
        self.algo.load_state_dict(state["algorithm"])
        return dict(state["counters"])
