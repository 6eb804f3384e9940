"""LeRobotDataset v3.0 export (parquet + one MP4 per camera + meta) and import as a demo buffer.

Camera observations (uint8 HxWx3) become `observation.images.<key>` videos. The other keys are
joined into `observation.state` (float32, every element named, as LeRobot's own datasets have it)
and also kept one column each as `observation.<key>`, so our import restores the exact layout.
Rewards, done flags and intervention flags go in `next.reward`, `next.done` and
`complementary_info.is_intervention`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from buffer.episodes import EpisodeReader, is_image
from buffer.replay_buffer import ReplayBuffer
from buffer.zarr_storage import ZarrStorage
from robot_rl.core import ArraySpec, DictSpec, Source, StorageError, Transition

DATA_FILE = "data/chunk-000/file-000.parquet"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
VIDEO_FILE = "videos/{key}/chunk-000/file-000.mp4"


STATE = "observation.state"


def element_names(key: str, spec: ArraySpec) -> list[str]:
    """A name per element of a vector observation: `ee_pos.0`, `ee_pos.1`, ... (`gripper`)."""
    size = int(np.prod(spec.shape, dtype=np.int64))
    return [key] if size == 1 else [f"{key}.{i}" for i in range(size)]


def _feature(spec: ArraySpec, video: bool, fps: float, names: list[str] | None) -> dict[str, Any]:
    if video:
        return {"dtype": "video", "shape": list(spec.shape), "names": ["height", "width",
                "channels"], "info": {"video.fps": fps, "video.codec": "h264",
                                      "video.pix_fmt": "yuv420p"}}
    return {"dtype": spec.dtype, "shape": list(spec.shape) or [1], "names": names}


def _column(values: np.ndarray) -> pa.Array:
    flat = values.reshape(len(values), -1)
    return pa.array(list(flat)) if flat.shape[1] > 1 or values.ndim > 1 else pa.array(values)


def export_lerobot(storage: ZarrStorage, out: Path, fps: float,
                   robot_type: str = "robot_rl") -> int:
    """Write every ended episode to `out` as LeRobotDataset v3.0; return the frame count."""
    if out.exists() and any(out.iterdir()):
        raise StorageError(f"{out} exists and is not empty; choose a new folder")
    reader = EpisodeReader(storage)
    images = [k for k, s in storage.obs_spec.items() if is_image(s.shape, s.dtype)]
    states = [k for k in storage.obs_spec if k not in images]
    joined = bool(states) and "state" not in states  # a key named `state` already is the state
    tasks = sorted({reader.storage.tasks[int(t)] for t in reader.episodes["task"]})
    writers = {}
    for key in images:
        path = out / VIDEO_FILE.format(key=f"observation.images.{key}")
        path.parent.mkdir(parents=True, exist_ok=True)
        writers[key] = imageio.get_writer(path, fps=fps, codec="libx264", quality=9,
                                          macro_block_size=1, pixelformat="yuv420p")
    columns: dict[str, list[np.ndarray]] = {}
    episode_rows: list[dict[str, Any]] = []
    total = 0
    for ep in reader:
        n = ep.length
        cols = {STATE: np.concatenate([ep.obs[k].reshape(n, -1).astype(np.float32)
                                       for k in states], axis=1)} if joined else {}
        cols |= {f"observation.{k}": ep.obs[k] for k in states}
        cols |= {"action": ep.action, "next.reward": ep.info["reward"],
                 "next.done": ep.info["terminated"] | ep.info["truncated"],
                 "complementary_info.is_intervention": ep.info["intervened"],
                 "timestamp": (np.arange(n) / fps).astype(np.float32),
                 "frame_index": np.arange(n), "episode_index": np.full(n, ep.position),
                 "index": total + np.arange(n),
                 "task_index": np.full(n, tasks.index(ep.task))}
        for k, v in cols.items():
            columns.setdefault(k, []).append(v)
        for key in images:
            for frame in ep.obs[key]:
                writers[key].append_data(frame)
        row = {"episode_index": ep.position, "tasks": [ep.task], "length": n,
               "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": total,
               "dataset_to_index": total + n, "meta/episodes/chunk_index": 0,
               "meta/episodes/file_index": 0, "success": ep.success}
        for key in images:
            vk = f"videos/observation.images.{key}"
            row |= {f"{vk}/chunk_index": 0, f"{vk}/file_index": 0,
                    f"{vk}/from_timestamp": total / fps, f"{vk}/to_timestamp": (total + n) / fps}
        episode_rows.append(row)
        total += n
    for w in writers.values():
        w.close()
    data = {k: np.concatenate(v) for k, v in columns.items()}
    (out / DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: _column(v) for k, v in data.items()}), out / DATA_FILE)
    (out / EPISODES_FILE).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), out / EPISODES_FILE)
    pq.write_table(pa.table({"task_index": np.arange(len(tasks)), "task": tasks}),
                   out / "meta/tasks.parquet")
    features = {f"observation.images.{k}": _feature(storage.obs_spec[k], True, fps, None)
                for k in images}
    names = {k: element_names(k, storage.obs_spec[k]) for k in states}
    if joined:
        state_names = [n for k in states for n in names[k]]
        features[STATE] = {"dtype": "float32", "shape": [len(state_names)], "names": state_names}
    features |= {f"observation.{k}": _feature(storage.obs_spec[k], False, fps, names[k])
                 for k in states}
    features["action"] = _feature(storage.action_spec, False, fps,
                                  element_names("action", storage.action_spec))
    for name, dtype in (("next.reward", "float32"), ("next.done", "bool"),
                        ("complementary_info.is_intervention", "bool"), ("timestamp", "float32"),
                        ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                        ("task_index", "int64")):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    info = {"codebase_version": "v3.0", "robot_type": robot_type, "total_episodes": len(reader),
            "total_frames": total, "total_tasks": len(tasks), "chunks_size": 1000,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 500, "fps": fps,
            "splits": {"train": f"0:{len(reader)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features,
            "robot_rl": {"state_keys": states}}  # observation.state joins these, in this order
    (out / "meta/info.json").write_text(json.dumps(info, indent=2))
    stats = {k: {"mean": v.reshape(len(v), -1).mean(0).tolist(),
                 "std": v.reshape(len(v), -1).std(0).tolist(),
                 "min": v.reshape(len(v), -1).min(0).tolist(),
                 "max": v.reshape(len(v), -1).max(0).tolist(), "count": [len(v)]}
             for k, v in data.items() if v.dtype.kind == "f"}
    (out / "meta/stats.json").write_text(json.dumps(stats))
    return total


def _read_info(folder: Path) -> dict[str, Any]:
    try:
        info = json.loads((folder / "meta/info.json").read_text())
    except (OSError, ValueError) as exc:
        raise StorageError(f"{folder}: not a LeRobotDataset (meta/info.json: {exc})") from exc
    if info.get("codebase_version") != "v3.0":
        raise StorageError(f"{folder}: LeRobotDataset {info.get('codebase_version')}; only v3.0 "
                           "is read (convert older datasets with lerobot's converter)")
    return info


class _Videos:
    """Decoded camera files of a dataset, sliced per episode by its from_timestamp."""

    def __init__(self, folder: Path, info: dict[str, Any]) -> None:
        self.folder, self.info = folder, info
        self.files: dict[tuple[str, int, int], np.ndarray] = {}

    def frames(self, key: str, ep: dict[str, Any], length: int) -> np.ndarray:
        where = (key, int(ep.get(f"videos/{key}/chunk_index", 0)),
                 int(ep.get(f"videos/{key}/file_index", 0)))
        if where not in self.files:
            path = self.folder / self.info["video_path"].format(
                video_key=key, chunk_index=where[1], file_index=where[2])
            self.files[where] = np.stack(list(imageio.mimread(path, memtest=False)))
        first = int(round(float(ep.get(f"videos/{key}/from_timestamp", 0.0)) * self.info["fps"]))
        frames = self.files[where][first: first + length]
        if len(frames) != length:
            raise StorageError(f"{self.folder}: video {key} has {len(frames)} frames for episode "
                               f"{ep['episode_index']}, which has {length} steps")
        return frames


def import_lerobot(folder: Path, out: Path, fsync: bool = True) -> ReplayBuffer:
    """Read a LeRobotDataset v3.0 folder into a new buffer at `out` (source DEMO)."""
    info = _read_info(folder)
    data = pa.concat_tables([pq.read_table(p) for p in sorted((folder / "data").rglob(
        "*.parquet"))]).to_pydict()
    episodes = pa.concat_tables([pq.read_table(p) for p in sorted(
        (folder / "meta/episodes").rglob("*.parquet"))]).to_pylist()
    feats = info["features"]
    videos = [k for k, f in feats.items() if f["dtype"] == "video"]
    states = [k for k in feats if k.startswith("observation.") and k not in videos]
    ours = [f"observation.{k}" for k in info.get("robot_rl", {}).get("state_keys", [])]
    if ours and STATE not in ours and all(k in feats for k in ours):  # ours: the split keys
        states = [k for k in states if k != STATE]
    name = {k: k.removeprefix("observation.images.").removeprefix("observation.")
            for k in videos + states}
    state = {k: np.asarray(data[k], feats[k]["dtype"]).reshape(-1, *feats[k]["shape"])
             for k in states}
    action = np.asarray(data["action"], feats["action"]["dtype"])
    spec = DictSpec({name[k]: ArraySpec(tuple(feats[k]["shape"]), "uint8" if k in videos else
                                        feats[k]["dtype"]) for k in videos + states})
    buf = ReplayBuffer(out, spec, ArraySpec(action.shape[1:], action.dtype.name), fsync=fsync)
    n = len(action)
    reward = np.asarray(data.get("next.reward", np.zeros(n)), np.float32).ravel()
    done = np.asarray(data.get("next.done", np.zeros(n, bool)), bool).ravel()
    intervened = np.asarray(data.get("complementary_info.is_intervention",
                                     np.zeros(n, bool)), bool).ravel()
    cameras = _Videos(folder, info)
    for ep in episodes:
        lo, hi = int(ep["dataset_from_index"]), int(ep["dataset_to_index"])
        obs = {name[k]: state[k][lo:hi] for k in states}
        obs |= {name[k]: cameras.frames(k, ep, hi - lo) for k in videos}
        steps = []
        for i in range(hi - lo):
            j = min(i + 1, hi - lo - 1)  # LeRobot keeps no final observation: repeat the last
            steps.append(Transition(
                {k: v[i] for k, v in obs.items()}, action[lo + i], float(reward[lo + i]),
                {k: v[j] for k, v in obs.items()}, bool(done[lo + i]) and lo + i == hi - 1,
                False, intervened=bool(intervened[lo + i]), source=Source.DEMO,
                robot_id="lerobot", episode_id=int(ep["episode_index"]), step=i,
                wall_time=i / info["fps"]))
        buf.append(steps, task=(ep.get("tasks") or ["default"])[0])
        buf.end_episode(bool(ep.get("success", done[hi - 1])))
    buf.commit({"imported_from": str(folder)})
    return buf
