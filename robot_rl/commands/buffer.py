"""`robot-rl buffer info|export|import`: inspect a run's buffer, export it, import demos."""

from __future__ import annotations

import argparse
from pathlib import Path

from buffer import ZarrStorage
from buffer.stats import summarize_buffer
from robot_rl.commands import COMMANDS, Command, add_action, print_summary
from robot_rl.core import ConfigError, RunDirError
from robot_rl.runtime.run_dir import RunDir


def open_storage(path: Path) -> ZarrStorage:
    """A run directory's buffer, or a buffer folder given directly (read-only)."""
    run = RunDir(path)
    folder = run.buffer if run.buffer.is_dir() else path
    if not folder.is_dir():
        raise RunDirError(f"{path}: no such run directory or buffer folder")
    return ZarrStorage.open_existing(folder)


def control_hz(path: Path) -> float:
    run = RunDir(path)
    return float(run.load_config().robot.control_hz) if run.exists else 10.0


@COMMANDS.register("buffer")
class BufferCommand(Command):
    help = "Inspect a run's replay buffer, export it (LeRobotDataset v3, ROS 2 bag), import demos."
    example = ("robot-rl buffer info runs/reach\n  robot-rl buffer export runs/reach --format "
               "lerobot --out reach-lerobot\n  robot-rl buffer import demos-lerobot --out demos")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        info = add_action(sub, "info", "episodes, steps, success and intervention rates, policy "
                          "versions, disk size", "robot-rl buffer info runs/reach --verify")
        info.add_argument("run_dir", type=Path, help="run directory or buffer folder")
        info.add_argument("--verify", action="store_true",
                          help="read every chunk and check its checksum (quarantines damage)")
        info.add_argument("--json", action="store_true", help="print one JSON object")
        export = add_action(sub, "export", "write the buffer as a LeRobotDataset v3 folder or a "
                            "ROS 2 bag", "robot-rl buffer export runs/reach --format lerobot "
                            "--out reach-lerobot")
        export.add_argument("run_dir", type=Path, help="run directory or buffer folder")
        export.add_argument("--format", choices=["lerobot", "rosbag"], required=True,
                            help="lerobot: LeRobotDataset v3 (parquet + meta); rosbag: ROS 2 bag")
        export.add_argument("--out", type=Path, required=True, help="new folder / bag path")
        imp = add_action(sub, "import", "read a LeRobotDataset v3 folder as a buffer of demos "
                         "(source demo)",
                         "robot-rl buffer import reach-lerobot --out runs/pick/demos")
        imp.add_argument("dataset", type=Path, help="LeRobotDataset v3 folder (meta/info.json)")
        imp.add_argument("--out", type=Path, required=True,
                         help="new buffer folder, e.g. <run>/demos for RLPD's demo side")

    def run(self, args: argparse.Namespace) -> int:
        if args.action == "info":
            info = summarize_buffer(open_storage(args.run_dir), verify=args.verify)
            print_summary(info, args.json)
            return 1 if info["problems"] else 0
        if args.action == "export":
            storage = open_storage(args.run_dir)
            if args.format == "lerobot":
                from buffer.lerobot import export_lerobot

                frames = export_lerobot(storage, args.out, control_hz(args.run_dir))
                print(f"wrote {storage.episodes} episodes, {frames} frames to {args.out}")
            else:
                from buffer.rosbag import export_rosbag

                count = export_rosbag(storage, args.out)
                print(f"wrote {count} messages of {storage.episodes} episodes to {args.out}")
            return 0
        if args.out.exists():
            raise ConfigError(f"{args.out} exists; import into a new buffer folder")
        from buffer.lerobot import import_lerobot

        with import_lerobot(args.dataset, args.out) as buf:
            print(f"imported {buf.num_episodes} episodes, {len(buf)} steps into {args.out}")
        return 0
