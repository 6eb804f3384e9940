"""Converts nested state dicts between torch tensors and numpy arrays (checkpoints hold numpy)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.core import CorruptDataError
from robot_rl.core.durable import write_file_atomic


def tree_to_numpy(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu().numpy().copy()
    if isinstance(tree, dict):
        return {k: tree_to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_to_numpy(v) for v in tree)
    return tree


def tree_to_torch(tree: Any) -> Any:
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(np.array(tree))
    if isinstance(tree, dict):
        return {k: tree_to_torch(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_to_torch(v) for v in tree)
    return tree


def save_module(path: Path, module: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Write a module's weights and a JSON description of it to one .npz (no pickle)."""
    arrays = {f"w/{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    data = io.BytesIO()
    np.savez(data, meta=np.array(json.dumps(meta)), **arrays)
    write_file_atomic(Path(path), data.getvalue())


def load_module(path: Path, what: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(meta, weights) of a file written by `save_module`; else CorruptDataError naming `what`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            weights = {k[2:]: torch.from_numpy(data[k]) for k in data.files if k != "meta"}
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptDataError(f"{path} is not a saved {what} ({exc})") from exc
    return meta, weights
