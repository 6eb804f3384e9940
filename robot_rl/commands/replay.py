"""`robot-rl replay`: render a stored episode to MP4/GIF with an overlay, plus progress plots."""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw

from buffer import ZarrStorage
from buffer.episodes import EpisodeData, EpisodeReader, is_image
from robot_rl.commands import COMMANDS, Command
from robot_rl.core import ConfigError
from robot_rl.runtime.run_dir import RunDir


def overlay(frame: np.ndarray, ep: EpisodeData, step: int) -> np.ndarray:
    """The frame with step, action, reward and a red band while a human intervened."""
    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    action = np.array2string(ep.action[step], precision=2, suppress_small=True, max_line_width=60)
    lines = [f"ep {ep.episode_id} {ep.robot} step {step}", f"a {action}",
             f"r {float(ep.info['reward'][step]):+.3f}  v{int(ep.info['policy_version'][step])}"]
    if ep.info["intervened"][step]:
        draw.rectangle([0, img.height - 14, img.width, img.height], fill=(200, 30, 30))
        draw.text((4, img.height - 13), "HUMAN INTERVENTION", fill=(255, 255, 255))
    for i, line in enumerate(lines):
        draw.text((4, 2 + 11 * i), line, fill=(255, 255, 0))
    return np.asarray(img)


def recorded_frames(ep: EpisodeData, camera: str, size: int) -> list[np.ndarray] | None:
    """Frames from a camera observation, scaled to `size` (None: no camera was recorded)."""
    if camera not in ep.obs or not is_image(ep.obs[camera].shape[1:], ep.obs[camera].dtype.name):
        return None
    scale = max(1, size // ep.obs[camera].shape[1])
    return [np.repeat(np.repeat(f, scale, 0), scale, 1) for f in ep.obs[camera]]


def rendered_frames(run: RunDir, ep: EpisodeData, camera: str, size: int) -> list[np.ndarray]:
    """Frames re-rendered in MuJoCo from the recorded joint states."""
    from robot_rl.runtime.build import build_robot

    arm, _ = build_robot(run.load_config())
    arm.connect()
    try:
        return [arm.render_state({k: v[i] for k, v in ep.obs.items()}, camera, size, size)
                for i in range(ep.length)]
    finally:
        arm.disconnect()


def plot_progress(reader: EpisodeReader, out: Path, mark: int | None = None,
                  window: int = 20) -> None:
    """Return per episode and rolling success rate over episodes, as one PNG; `mark` draws a
    line at the replayed episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns = reader.episodes["total_reward"]
    success = reader.episodes["success"].astype(float)
    rolling = np.convolve(success, np.ones(window), "full")[: len(success)] / np.minimum(
        np.arange(1, len(success) + 1), window)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    top.plot(returns, lw=1)
    top.set_ylabel("return")
    bottom.plot(rolling, color="tab:green")
    bottom.set_ylabel(f"success (last {window})")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel("episode")
    if mark is not None:
        for ax in (top, bottom):
            ax.axvline(mark, color="tab:red", lw=1, ls="--")
        top.annotate(f"replayed: {mark}", (mark, 1.0), xycoords=("data", "axes fraction"),
                     xytext=(3, -12), textcoords="offset points", color="tab:red", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


VIDEO_SUFFIXES = (".mp4", ".gif")


def check_out(out: Path | None) -> None:
    """Refuse an --out that cannot be written, before any frame is rendered."""
    if out is None:
        return
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"--out {out}: the video must end in {' or '.join(VIDEO_SUFFIXES)}")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")


def check_camera(camera: str, ep: EpisodeData) -> None:
    """A camera must be recorded in the episode or be one the sim can re-render."""
    from sim import CAMERAS

    recorded = [k for k, v in ep.obs.items() if is_image(v.shape[1:], v.dtype.name)]
    if camera not in recorded and camera not in CAMERAS:
        raise ConfigError(f"--camera {camera}: not recorded in this run (recorded: "
                          f"{', '.join(recorded) or 'none'}) and not a sim camera to re-render "
                          f"({', '.join(CAMERAS)})")


@COMMANDS.register("replay")
class Replay(Command):
    help = "Render a stored episode to MP4/GIF (action, reward, intervention overlay) + plots."
    example = "robot-rl replay runs/reach --episode -1 --out reach.mp4"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path, help="a run directory (run.dir of a session)")
        parser.add_argument("--episode", type=int, default=-1, help="index; negative counts back")
        parser.add_argument("--out", type=Path, default=None,
                            help=".mp4 or .gif (default: in the run dir)")
        parser.add_argument("--camera", default="side_cam",
                            help="a recorded camera key, else a MuJoCo camera to render")
        parser.add_argument("--size", type=int, default=256,
                            help="frame height and width in pixels (recorded frames are scaled)")

    def run(self, args: argparse.Namespace) -> int:
        run = RunDir(args.run_dir).require()
        check_out(args.out)
        hz = float(run.load_config().robot.control_hz)
        reader = EpisodeReader(ZarrStorage.open_existing(run.buffer))
        ep = reader.read(args.episode)
        check_camera(args.camera, ep)
        frames = recorded_frames(ep, args.camera, args.size) or \
            rendered_frames(run, ep, args.camera, args.size)
        frames = [overlay(f, ep, i) for i, f in enumerate(frames)]
        out = args.out or run.root / f"episode-{ep.position:05d}.mp4"
        if out.suffix == ".gif":
            imageio.mimsave(out, frames, duration=1000 / hz, loop=0)
        else:
            imageio.mimsave(out, frames, fps=hz, macro_block_size=1)
        plots = out.with_name(out.stem + "-progress.png")
        plot_progress(reader, plots, mark=ep.position)
        print(f"episode {ep.position}: {ep.length} steps, success={ep.success} -> {out}; "
              f"return/success plots -> {plots}")
        return 0
