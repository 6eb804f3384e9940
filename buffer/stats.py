"""The numbers `robot-rl buffer info` prints about a buffer."""

from __future__ import annotations

from typing import Any

import numpy as np

from buffer.zarr_storage import ZarrStorage


def rate_over_time(values: np.ndarray, bins: int = 10) -> list[float]:
    """Mean of `values` over `bins` consecutive, equal slices (e.g. success rate over time)."""
    if not len(values):
        return []
    return [round(float(part.mean()), 3) for part in np.array_split(values, min(bins, len(values)))]


def summarize_buffer(storage: ZarrStorage, verify: bool = False) -> dict[str, Any]:
    """Episodes, steps, success and intervention rates, policy versions, disk size, damage."""
    problems = storage.verify() if verify else []
    episodes = storage.read_episodes()
    info = storage.read_step_info()
    versions = info["policy_version"]
    steps = storage.steps
    ended = set(episodes["episode_id"].tolist())
    return {
        "path": str(storage.path),
        "schema_version": storage.header.version,
        "episodes": storage.episodes,
        "open_episodes": len(set(info["episode_id"].tolist()) - ended),
        "steps": steps,
        "robots": storage.robots,
        "tasks": storage.tasks,
        "success_rate": float(episodes["success"].mean()) if storage.episodes else 0.0,
        "success_rate_over_time": rate_over_time(episodes["success"].astype(float)),
        "return_over_time": rate_over_time(episodes["total_reward"].astype(float)),
        "intervention_rate": float(info["intervened"].mean()) if steps else 0.0,
        "intervention_rate_over_time": rate_over_time(info["intervened"].astype(float)),
        "policy_versions": {"min": int(versions.min()) if steps else 0,
                            "max": int(versions.max()) if steps else 0,
                            "distinct": int(len(np.unique(versions)))},
        "disk_bytes": storage.disk_bytes(),
        "bytes_per_step": round(storage.disk_bytes() / steps, 1) if steps else 0.0,
        "commits": storage.commit_no,
        "commit_meta": storage.meta,
        "quarantined_chunks": [f"{t} {c}: {r}" for (t, c), r in storage.quarantined.items()],
        "problems": problems,
    }
