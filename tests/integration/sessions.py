"""Sessions for the integration tests: composed as `robot-rl train` composes them, run in the
test's process on the suite's Ray instance (`ray_local`)."""

from __future__ import annotations

from pathlib import Path

from robot_rl.config import compose_session
from robot_rl.runtime.ray.session import RaySession
from robot_rl.runtime.run_dir import RunDir


def new_session(root: Path, *overrides: str) -> RaySession:
    """A session on the run directory `root` (resumed when it exists), its config saved."""
    run = RunDir(root)
    if run.exists:
        from robot_rl.commands.train import resolve_config

        run, cfg = resolve_config([*overrides, f"run.dir={root}"])
    else:
        cfg = compose_session([*overrides, f"run.dir={root}"])
    session = RaySession(cfg, run)
    run.save_config(cfg)
    return session
