"""`robot-rl replay`: render a stored episode of a run to a video."""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from buffer import ZarrStorage
from robot_rl.commands import COMMANDS, Command
from robot_rl.core import RunDirError
from robot_rl.runtime.run_dir import RunDir
from robot_rl.runtime.session import build_robot


@COMMANDS.register("replay")
class Replay(Command):
    help = "Re-render one stored episode of a run to MP4 or GIF from its recorded states."
    example = "robot-rl replay runs/reach --episode -1 --out reach.mp4"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path)
        parser.add_argument("--episode", type=int, default=-1, help="index; negative counts back")
        parser.add_argument("--out", type=Path, default=None, help=".mp4 or .gif (default: in run dir)")
        parser.add_argument("--camera", default="side_cam")
        parser.add_argument("--size", type=int, default=256)

    def run(self, args: argparse.Namespace) -> int:
        run = RunDir(args.run_dir)
        cfg = run.load_config()
        storage = ZarrStorage.open_existing(run.buffer)
        episodes = storage.read_episodes()
        n = len(episodes["start"])
        if not -n <= args.episode < n:
            raise RunDirError(f"{run.root} has {n} episodes; --episode {args.episode} is out of range")
        index = args.episode % n
        start, length = int(episodes["start"][index]), int(episodes["length"][index])
        steps = storage.read_steps()
        keys = list(storage.obs_spec)
        arm, _ = build_robot(cfg)
        arm.connect()
        frames = []
        try:
            for i in range(start, start + length):
                obs = {k: steps[f"next_obs/{k}"][i] for k in keys}
                frames.append(arm.render_state(obs, args.camera, args.size, args.size))
        finally:
            arm.disconnect()
        out = args.out or run.root / f"episode-{index:05d}.mp4"
        if out.suffix == ".gif":
            imageio.mimsave(out, frames, duration=1000 / cfg.robot.control_hz, loop=0)
        else:
            imageio.mimsave(out, frames, fps=cfg.robot.control_hz, macro_block_size=1)
        success = bool(np.asarray(episodes["success"][index]))
        print(f"episode {index}: {length} steps, success={success} -> {out}")
        return 0
