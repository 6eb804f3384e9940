"""Atomic checkpoints without pickle: arrays in an .npz, the tree around them in JSON.

A checkpoint is written to a temporary directory, fsynced, renamed into place, and only then
named by `latest.json` (itself replaced atomically), so a crash never leaves a half checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.core import CorruptDataError
from robot_rl.core.durable import fsync_path, write_file_atomic

LATEST = "latest.json"


def _encode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """JSON skeleton of `tree`; arrays move to `arrays`, dict keys keep their int/str type."""
    if isinstance(tree, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = tree
        return {"__array__": key}
    if isinstance(tree, np.generic):
        return tree.item()
    if isinstance(tree, dict):
        return {"__dict__": [[k, _encode(v, arrays)] for k, v in tree.items()]}
    if isinstance(tree, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in tree]}
    if isinstance(tree, list):
        return [_encode(v, arrays) for v in tree]
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"cannot checkpoint a value of type {type(tree).__name__}")


def _decode(node: Any, arrays: Any) -> Any:
    if isinstance(node, dict):
        if "__array__" in node:
            return arrays[node["__array__"]]
        if "__dict__" in node:
            return {k: _decode(v, arrays) for k, v in node["__dict__"]}
        if "__tuple__" in node:
            return tuple(_decode(v, arrays) for v in node["__tuple__"])
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    return node


def save_checkpoint(root: Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write `state` as checkpoint `step` under `root` and point `latest.json` at it."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"ckpt-{step:09d}"
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    arrays: dict[str, np.ndarray] = {}
    skeleton = _encode(state, arrays)
    with open(tmp / "arrays.npz", "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    with open(tmp / "state.json", "w") as f:
        json.dump(skeleton, f)
        f.flush()
        os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    fsync_path(root)
    write_file_atomic(root / LATEST, json.dumps({"checkpoint": final.name, "step": step}).encode())
    fsync_path(root)
    for old in sorted(root.glob("ckpt-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(directory: Path) -> dict[str, Any]:
    """The state saved in one checkpoint directory (`<run>/checkpoints/ckpt-NNNNNNNNN`)."""
    try:
        skeleton = json.loads((directory / "state.json").read_text())
        with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
            return _decode(skeleton, {k: arrays[k] for k in arrays.files})
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptDataError(f"checkpoint {directory} is unreadable ({exc})") from exc


def load_latest(root: Path) -> dict[str, Any] | None:
    """The newest checkpoint's state, or None when there is none yet."""
    pointer = root / LATEST
    if not pointer.exists():
        return None
    try:
        return load_checkpoint(root / json.loads(pointer.read_text())["checkpoint"])
    except (OSError, ValueError, KeyError, CorruptDataError) as exc:
        raise CorruptDataError(
            f"checkpoint under {root} is unreadable ({exc}); remove {pointer} to start the "
            "learner afresh from the buffer"
        ) from exc


def safety_counts(state: dict[str, Any] | None, robot_id: str, first_robot: str) -> dict[str, int]:
    """A robot's safety-layer counts in a checkpoint (those of one-robot runs were kept flat,
    for the run's only robot, `first_robot`)."""
    saved = (state or {}).get("safety", {})
    if saved and all(isinstance(v, int | np.integer) for v in saved.values()):
        saved = {first_robot: saved}
    return {str(k): int(v) for k, v in saved.get(robot_id, {}).items()}
