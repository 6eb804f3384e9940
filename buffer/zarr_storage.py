"""Transitions on disk in a Zarr v3 group, time-major, with an atomic commit record.

Readers see only what the commit record covers; anything appended past it (a crash between the
append and the commit) is cut off when the store is opened again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from robot_rl.core import ArraySpec, DictSpec, StorageError

SCHEMA_VERSION = 1
COMMIT_FILE = "commit.json"
STEP_FIELDS = {
    "action": None,  # from the action spec
    "reward": ArraySpec((), "float32"),
    "terminated": ArraySpec((), "bool"),
    "truncated": ArraySpec((), "bool"),
    "intervened": ArraySpec((), "bool"),
    "source": ArraySpec((), "int8"),
    "policy_version": ArraySpec((), "int64"),
    "episode_id": ArraySpec((), "int64"),
    "wall_time": ArraySpec((), "float64"),
}
EPISODE_FIELDS = {
    "start": "int64", "length": "int64", "success": "bool", "total_reward": "float32",
    "interventions": "int64",
}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ZarrStorage:
    """Append-only columns of steps and episodes; `commit()` makes appended data durable."""

    def __init__(self, path: Path, obs_spec: DictSpec, action_spec: ArraySpec, chunk: int = 1024):
        self.path = Path(path)
        self.obs_spec = obs_spec
        self.action_spec = action_spec
        fresh = not (self.path / COMMIT_FILE).exists()
        self.group = zarr.open_group(str(self.path), mode="a")
        if fresh:
            self._create(chunk)
        else:
            self._check_schema()
        self.steps, self.episodes, self.meta = self._read_commit()
        self._truncate_to_commit()

    @classmethod
    def open_existing(cls, path: Path) -> ZarrStorage:
        """Open a buffer written earlier, taking its specs from the store itself."""
        path = Path(path)
        if not (path / COMMIT_FILE).exists():
            raise StorageError(f"{path}: no robot_rl buffer here (missing {COMMIT_FILE})")
        attrs = zarr.open_group(str(path), mode="r").attrs
        try:
            obs_spec = DictSpec.from_json(attrs["observation_spec"])
            action_spec = ArraySpec.from_json(attrs["action_spec"])
        except KeyError as exc:
            raise StorageError(f"{path}: buffer metadata lacks {exc}; the store is damaged") from exc
        return cls(path, obs_spec, action_spec)

    # -- layout ----------------------------------------------------------------------------------
    def _step_specs(self) -> dict[str, ArraySpec]:
        specs = {f"obs/{k}": s for k, s in self.obs_spec.items()}
        specs.update({f"next_obs/{k}": s for k, s in self.obs_spec.items()})
        specs.update({k: s or self.action_spec for k, s in STEP_FIELDS.items()})
        return specs

    def _create(self, chunk: int) -> None:
        for name, spec in self._step_specs().items():
            self.group.create_array(
                name, shape=(0, *spec.shape), chunks=(chunk, *spec.shape), dtype=spec.dtype
            )
        for name, dtype in EPISODE_FIELDS.items():
            self.group.create_array(f"episodes/{name}", shape=(0,), chunks=(4096,), dtype=dtype)
        self.group.attrs.update({
            "schema_version": SCHEMA_VERSION,
            "observation_spec": self.obs_spec.to_json(),
            "action_spec": self.action_spec.to_json(),
        })
        _write_json_atomic(self.path / COMMIT_FILE, {"steps": 0, "episodes": 0, "meta": {}})

    def _check_schema(self) -> None:
        version = self.group.attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StorageError(
                f"{self.path}: buffer schema version {version}, this robot_rl reads "
                f"{SCHEMA_VERSION}; use a matching robot_rl version"
            )
        stored = DictSpec.from_json(self.group.attrs["observation_spec"])
        if stored != self.obs_spec:
            raise StorageError(
                f"{self.path}: stored observation spec differs from the robot's; "
                "start a new run directory for a different robot or task"
            )

    def _read_commit(self) -> tuple[int, int, dict[str, Any]]:
        try:
            record = json.loads((self.path / COMMIT_FILE).read_text())
            return int(record["steps"]), int(record["episodes"]), dict(record.get("meta", {}))
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(f"{self.path / COMMIT_FILE}: unreadable commit record ({exc})") from exc

    def _truncate_to_commit(self) -> None:
        for name, spec in self._step_specs().items():
            arr = self.group[name]
            if arr.shape[0] != self.steps:
                arr.resize((self.steps, *spec.shape))
        for name in EPISODE_FIELDS:
            arr = self.group[f"episodes/{name}"]
            if arr.shape[0] != self.episodes:
                arr.resize((self.episodes,))

    # -- writing ---------------------------------------------------------------------------------
    def append(
        self, steps: dict[str, np.ndarray], episodes: dict[str, np.ndarray],
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Append columns (same length within each group of fields) and commit them atomically.

        `meta` (JSON) is stored in the same commit record, e.g. a stream's acked sequence number.
        """
        n = len(next(iter(steps.values()))) if steps else 0
        e = len(next(iter(episodes.values()))) if episodes else 0
        for name, values in steps.items():
            arr = self.group[name]
            arr.resize((self.steps + n, *arr.shape[1:]))
            arr[self.steps : self.steps + n] = values
        for name, values in episodes.items():
            arr = self.group[f"episodes/{name}"]
            arr.resize((self.episodes + e,))
            arr[self.episodes : self.episodes + e] = values
        self.steps += n
        self.episodes += e
        if meta is not None:
            self.meta = dict(meta)
        record = {"steps": self.steps, "episodes": self.episodes, "meta": self.meta}
        _write_json_atomic(self.path / COMMIT_FILE, record)

    # -- reading ---------------------------------------------------------------------------------
    def read_steps(self) -> dict[str, np.ndarray]:
        return {name: self.group[name][: self.steps] for name in self._step_specs()}

    def read_episodes(self) -> dict[str, np.ndarray]:
        return {name: self.group[f"episodes/{name}"][: self.episodes] for name in EPISODE_FIELDS}
