"""`robot-rl train`: run a session; an existing run directory is resumed."""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from robot_rl.commands import COMMANDS, Command
from robot_rl.config import apply_overrides, compose_session
from robot_rl.core import ConfigError
from robot_rl.runtime.build import default_run_dir
from robot_rl.runtime.run_dir import RunDir, summarize
from robot_rl.runtime.session import Session


def resolve_config(overrides: list[str]) -> tuple[RunDir, OmegaConf]:
    """Compose a new config, or, for an existing run.dir, the stored one plus the overrides."""
    cfg = compose_session(overrides)
    run = RunDir(Path(cfg.run.dir) if cfg.run.dir else default_run_dir(cfg))
    if run.exists:
        stored = run.load_config()
        for group in ("task", "algo"):
            if cfg[group].name != stored[group].name:
                raise ConfigError(
                    f"{run.root} was run with {group}={stored[group].name}; it cannot resume "
                    f"as {group}={cfg[group].name}. Use a new run.dir"
                )
        kept = [o for o in overrides if o.split("=", 1)[0] not in ("task", "algo")]
        cfg = apply_overrides(stored, kept)
    cfg.run.dir = str(run.root)
    return run, cfg


@COMMANDS.register("train")
class Train(Command):
    help = "Run a learning session (the built-in default: a MuJoCo arm learning to reach)."
    example = "robot-rl train task=reach run.env_steps=6000 run.dir=runs/reach seed=1"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")

    def run(self, args: argparse.Namespace) -> int:
        run, cfg = resolve_config(args.overrides)
        resumed = run.exists
        session = Session(cfg, run)  # builds robot and learner: config errors surface here
        run.save_config(cfg)
        print(f"{'resuming' if resumed else 'starting'} run in {run.root}", flush=True)
        session.run_until_budget()
        info = summarize(run)
        print(f"success rate (last 20 episodes): {info['success_rate_last_20']:.2f}  "
              f"episodes: {info['episodes']}  env steps: {info['env_steps']}  "
              f"updates: {info['updates']}")
        print(f"run directory: {run.root}")
        return 0
