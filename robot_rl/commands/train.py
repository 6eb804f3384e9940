"""`robot-rl train`: run a session; an existing run directory is resumed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig

from robot_rl.commands import COMMANDS, Command
from robot_rl.commands.config import groups_help
from robot_rl.config import GROUPS, compose_session, resume_config
from robot_rl.core import ConfigError, DictSpec, StorageError
from robot_rl.runtime.build import default_run_dir
from robot_rl.runtime.run_dir import RunDir, summarize


def named_run_dir(overrides: list[str]) -> Path | None:
    """The `run.dir=PATH` among the overrides (the last one wins, as in Hydra), if any."""
    dirs = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == "run.dir"]
    return Path(dirs[-1]) if dirs and dirs[-1] not in ("", "null") else None


def resolve_config(overrides: list[str]) -> tuple[RunDir, DictConfig]:
    """A new run's composed config, or an existing run.dir's own config with the overrides
    composed onto it exactly as on a new run (`robot-rl train run.dir=DIR` alone resumes it)."""
    path = named_run_dir(overrides)
    if path is not None and RunDir(path).exists:
        run = RunDir(path)
        cfg = resume_config(run.load_config(), overrides, str(run.root))
    else:
        cfg = compose_session(overrides)
        run = RunDir(path or default_run_dir(cfg))
    cfg.run.dir = str(run.root)
    return run, cfg


def check_buffer_layout(run: RunDir, obs_spec: DictSpec, action_spec: object) -> None:
    """Refuse, before anything is written, a resumed run whose robot no longer matches the
    observations and actions its buffer holds (say, robot.cameras changed)."""
    if not run.buffer.exists():
        return
    from buffer.zarr_storage import stored_specs

    try:
        stored_obs, stored_action = stored_specs(run.buffer)
    except StorageError:
        return  # a damaged buffer is reported, with what to do, when the session opens it
    if stored_obs != obs_spec or stored_action != action_spec:
        ours, theirs = set(obs_spec), set(stored_obs)
        differ = sorted(k for k in ours & theirs if obs_spec[k] != stored_obs[k])
        raise ConfigError(
            f"{run.root}'s buffer holds other observations than this config gives (only in the "
            f"buffer: {sorted(theirs - ours)}, only in the config: {sorted(ours - theirs)}, "
            f"different: {differ}); resume with the robot settings it was recorded with, or use "
            "a new run.dir")


def resume_command(run: RunDir) -> str:
    """The command that resumes `run`, spelled as this one was started (`.venv/bin/robot-rl`
    under make demo)."""
    prog = sys.argv[0] if Path(sys.argv[0]).name == "robot-rl" else "robot-rl"
    return f"{prog} train run.dir={run.root}"


@COMMANDS.register("train")
class Train(Command):
    help = "Run a learning session (the built-in default: a MuJoCo arm learning to reach)."
    example = ("robot-rl train task=reach run.env_steps=6000 run.dir=runs/reach seed=1\n"
               "  robot-rl train run.dir=runs/reach          # resume it (after Ctrl-C, a crash)\n"
               "  robot-rl config show task=pick_cube algo=rlpd  # every key and choice")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("overrides", nargs="*", metavar="key=value",
                            help=f"Hydra overrides: config groups ({', '.join(GROUPS)}) and keys, "
                                 "e.g. task=pick_cube algo=rlpd run.env_steps=30000; "
                                 "`robot-rl config show` prints every key")
        parser.epilog = f"{parser.epilog}\n\nconfig groups and their options:\n{groups_help()}"

    def run(self, args: argparse.Namespace) -> int:
        run, cfg = resolve_config(args.overrides)
        resumed = run.exists
        lock = run.writer_lock()
        if resumed:
            lock.acquire()  # a second writer is refused at once, before anything is written
        from robot_rl.runtime.ray.session import RaySession  # Ray: only once a session runs

        session = RaySession(cfg, run)  # builds robot and learner: config errors surface here
        try:
            check_buffer_layout(run, session.obs_spec, session.action_spec)
        except ConfigError:
            session.close_devices()
            raise
        with lock:  # a new run's folder is created only now that its config is known good
            run.save_config(cfg)
            print(f"{'resuming' if resumed else 'starting'} run in {run.root}", flush=True)
            try:
                session.run_until_budget()
            except KeyboardInterrupt:  # the session checkpointed on its way out
                print(f"\ninterrupted: the buffer keeps every ended episode and the learner is "
                      f"checkpointed; resume with\n  {resume_command(run)}", flush=True)
                return 130
        info = summarize(run)
        print(f"success rate (last 20 episodes): {info['success_rate_last_20']:.2f}  "
              f"episodes: {info['episodes']}  env steps: {info['env_steps']}  "
              f"updates: {info['updates']}")
        print(f"run directory: {run.root}  (raise run.env_steps and run the same command to go "
              "on)")
        return 0
