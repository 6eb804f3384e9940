"""The run directory: where a session keeps its config, buffer, checkpoints and logs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from buffer import ZarrStorage
from robot_rl.core import RunDirError, StorageError
from robot_rl.core.locks import WriterLock
from robot_rl.runtime.checkpoint import load_latest


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def buffer(self) -> Path:
        return self.root / "buffer"

    @property
    def demos(self) -> Path:
        """The demo side of RLPD: demonstrations and every human-intervened step."""
        return self.root / "demos"

    @property
    def feature_demos(self) -> Path:
        """The demo side with frozen camera features added (built from `demos` at first start)."""
        return self.root / "demos_features"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def exists(self) -> bool:
        return self.config.exists()

    def writer_lock(self) -> WriterLock:
        """The run's one-writer lock, taken before a command writes anything into the run."""
        return WriterLock(self.root / "run.lock", f"run directory {self.root}")

    def require(self) -> RunDir:
        if not self.root.is_dir():
            raise RunDirError(f"run directory {self.root} does not exist")
        if not self.exists:
            raise RunDirError(f"{self.root} is not a robot_rl run directory (no config.yaml)")
        return self

    def save_config(self, cfg: DictConfig) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(OmegaConf.to_yaml(cfg))
        tmp.replace(self.config)

    def load_config(self) -> DictConfig:
        return OmegaConf.load(self.require().config)  # type: ignore[return-value]


def summarize(run: RunDir) -> dict[str, Any]:
    """The numbers `robot-rl info` prints: progress, success rates, interventions, versions."""
    run.require()
    try:
        storage = ZarrStorage.open_existing(run.buffer)
    except StorageError as exc:
        raise RunDirError(str(exc)) from exc
    episodes = storage.read_episodes()
    success = episodes["success"].astype(bool)
    counters = (load_latest(run.checkpoints) or {}).get("counters", {})
    return {
        "run_dir": str(run.root),
        "episodes": int(storage.episodes),
        "env_steps": int(storage.steps),
        "updates": int(counters.get("updates", 0)),
        "success_rate": float(success.mean()) if success.size else 0.0,
        "success_rate_last_20": float(success[-20:].mean()) if success.size else 0.0,
        "mean_return_last_20": (
            float(np.mean(episodes["total_reward"][-20:])) if success.size else 0.0
        ),
        "interventions": int(episodes["interventions"].sum()),
        "policy_version": int(counters.get("policy_version", 0)),
    }
