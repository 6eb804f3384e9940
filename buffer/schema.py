"""The versioned on-disk layout of a buffer (documented in buffer/SCHEMA.md): tables and columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_rl.core import ArraySpec, DictSpec, StorageError

SCHEMA_VERSION = 3  # 3: open-tail files, .npy WAL segments, flat chunk keys, Zstd images
OLDEST_READABLE = 2  # a version-2 store is read as it is, and marked 3 by its next writer
FORMAT_NAME = "robot_rl.buffer"
COMMIT_FILE = "commit.json"
PREV_COMMIT_FILE = "commit.prev.json"  # the record commit.json replaced: the fallback
CHECKSUM_FILE = "checksums.log"
QUARANTINE_FILE = "quarantine.json"
WAL_DIR = "wal"
LOCK_FILE = "writer.lock"  # held by the one process writing the buffer (robot_rl.core.locks)
CHUNK_TARGET_BYTES = 4 << 20  # raw bytes per chunk of the widest step column (~a few MB)

# Per-step metadata, kept whole in RAM for filters and balancing; obs/<k> and action go through
# the chunk cache. `prev_row` is the row whose next observation is this row's observation (-1 if
# none): that link is how next_obs is recovered without storing it twice.
STEP_META = {
    "reward": "float32", "terminated": "bool", "truncated": "bool", "intervened": "bool",
    "source": "int8", "policy_version": "int64", "robot_id": "int16", "task": "int16",
    "episode_id": "int64", "step": "int32", "timestamp": "float64", "prev_row": "int64",
}
EPISODE_COLUMNS = {
    "episode_id": "int64", "robot_id": "int16", "task": "int16", "first_row": "int64",
    "last_row": "int64", "length": "int64", "success": "bool", "total_reward": "float32",
    "interventions": "int64", "source_episode": "int64", "start_time": "float64",
    "end_time": "float64",
}


def heavy_step_specs(obs_spec: DictSpec, action_spec: ArraySpec) -> dict[str, ArraySpec]:
    """Step columns that are cached a chunk at a time: observations and the action."""
    specs = {f"obs/{k}": s for k, s in obs_spec.items()}
    specs["action"] = action_spec
    return specs


def step_specs(obs_spec: DictSpec, action_spec: ArraySpec) -> dict[str, ArraySpec]:
    specs = heavy_step_specs(obs_spec, action_spec)
    specs.update({k: ArraySpec((), d) for k, d in STEP_META.items()})
    return specs


def tail_specs(obs_spec: DictSpec) -> dict[str, ArraySpec]:
    """Next observations that are no later step's observation (episode ends, open episodes)."""
    specs = {f"obs/{k}": s for k, s in obs_spec.items()}
    specs["row"] = ArraySpec((), "int64")
    return specs


def episode_specs() -> dict[str, ArraySpec]:
    return {k: ArraySpec((), d) for k, d in EPISODE_COLUMNS.items()}


def chunk_rows(specs: dict[str, ArraySpec], target: int = CHUNK_TARGET_BYTES) -> int:
    """Rows per chunk: a power of two so the widest column's chunk is about `target` bytes."""
    widest = max(max(s.nbytes, 1) for s in specs.values())
    rows = 1 << max(0, int(np.floor(np.log2(max(target // widest, 1)))))
    return int(min(max(rows, 16), 1 << 16))


@dataclass(frozen=True)
class Header:
    """What the group attributes say about a buffer: version, specs and chunking."""

    version: int
    obs_spec: DictSpec
    action_spec: ArraySpec
    chunks: dict[str, int]

    def to_attrs(self) -> dict:
        return {
            "format": FORMAT_NAME, "schema_version": self.version,
            "observation_spec": self.obs_spec.to_json(), "action_spec": self.action_spec.to_json(),
            "chunk_rows": self.chunks,
        }

    @classmethod
    def from_attrs(cls, path: str, attrs: dict) -> Header:
        """Parse and version-check the attributes, raising StorageError that says what to do."""
        if attrs.get("format") != FORMAT_NAME:
            raise StorageError(f"{path}: not a robot_rl buffer (format attribute "
                               f"{attrs.get('format')!r}); point at a run's buffer/ folder")
        version = attrs.get("schema_version")
        if not isinstance(version, int):
            raise StorageError(f"{path}: schema_version {version!r} is not an integer; "
                               "the buffer's zarr.json is damaged")
        if version > SCHEMA_VERSION:
            raise StorageError(f"{path}: written with buffer schema {version}, newer than this "
                               f"robot_rl reads ({SCHEMA_VERSION}); upgrade robot_rl to open it")
        if version < OLDEST_READABLE:
            raise StorageError(f"{path}: buffer schema {version} is older than {OLDEST_READABLE} "
                               "and has no migration; export it with the robot_rl that wrote it")
        try:
            return cls(version, DictSpec.from_json(attrs["observation_spec"]),
                       ArraySpec.from_json(attrs["action_spec"]),
                       {k: int(v) for k, v in attrs["chunk_rows"].items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"{path}: buffer header lacks or garbles {exc}; "
                               "the store is damaged") from exc
