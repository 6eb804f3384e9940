"""ROS 2 bag export (via `rosbags`, the `ros` extra): one topic per field, stamped per step.

Topics: /<robot>/observation/<key> (sensor_msgs/Image for cameras, std_msgs/Float32MultiArray
otherwise), /<robot>/action (Float32MultiArray), /<robot>/reward (std_msgs/Float32),
/<robot>/intervened (std_msgs/Bool), /<robot>/episode_end (std_msgs/String, JSON summary).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from buffer.episodes import EpisodeReader, is_image
from buffer.zarr_storage import ZarrStorage
from robot_rl.core import StorageError


def _rosbags() -> tuple[Any, Any]:
    try:
        from rosbags.rosbag2 import Writer
        from rosbags.typesys import Stores, get_typestore
    except ImportError as exc:
        raise StorageError("rosbag export needs the `rosbags` package: "
                           "pip install 'robot-rl[ros]'") from exc
    return Writer, get_typestore(Stores.ROS2_HUMBLE)


def export_rosbag(storage: ZarrStorage, out: Path) -> int:
    """Write every ended episode to a ROS 2 bag (sqlite3) at `out`; return the message count."""
    if out.exists():
        raise StorageError(f"{out} exists; choose a new path for the bag")
    writer_cls, ts = _rosbags()
    T = ts.types
    header = T["std_msgs/msg/Header"]
    stamp = T["builtin_interfaces/msg/Time"]
    layout = T["std_msgs/msg/MultiArrayLayout"]([], 0)

    def floats(values: np.ndarray) -> Any:
        return T["std_msgs/msg/Float32MultiArray"](layout, values.astype(np.float32).ravel())

    def image(values: np.ndarray, ns: int, frame: str) -> Any:
        h, w, _ = values.shape
        hdr = header(stamp(ns // 10**9, ns % 10**9), frame)
        return T["sensor_msgs/msg/Image"](hdr, h, w, "rgb8", 0, w * 3, values.ravel())

    count = 0
    connections: dict[str, Any] = {}
    with writer_cls(out, version=9) as bag:
        def write(topic: str, msgtype: str, msg: Any, ns: int) -> None:
            nonlocal count
            if topic not in connections:
                connections[topic] = bag.add_connection(topic, msgtype, typestore=ts)
            bag.write(connections[topic], ns, ts.serialize_cdr(msg, msgtype))
            count += 1

        for ep in EpisodeReader(storage):
            base = f"/{ep.robot}"
            times = (np.maximum(ep.info["timestamp"], 0) * 1e9).astype(np.int64)
            for i, ns in enumerate(times.tolist()):
                for key, spec in storage.obs_spec.items():
                    topic = f"{base}/observation/{key}"
                    if is_image(spec.shape, spec.dtype):
                        write(topic, "sensor_msgs/msg/Image", image(ep.obs[key][i], ns, key), ns)
                    else:
                        write(topic, "std_msgs/msg/Float32MultiArray", floats(ep.obs[key][i]), ns)
                write(f"{base}/action", "std_msgs/msg/Float32MultiArray", floats(ep.action[i]), ns)
                write(f"{base}/reward", "std_msgs/msg/Float32",
                      T["std_msgs/msg/Float32"](float(ep.info["reward"][i])), ns)
                write(f"{base}/intervened", "std_msgs/msg/Bool",
                      T["std_msgs/msg/Bool"](bool(ep.info["intervened"][i])), ns)
            summary = {"episode_id": ep.episode_id, "task": ep.task, "success": ep.success,
                       "length": ep.length, "return": float(ep.info["reward"].sum())}
            write(f"{base}/episode_end", "std_msgs/msg/String",
                  T["std_msgs/msg/String"](json.dumps(summary)), int(times[-1]))
    return count
