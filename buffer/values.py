"""Checks of stored values that checksums cannot make: a row can be intact and still wrong
(written by an older robot_rl, or by a writer fed bad input). Vectorised over whole columns."""

from __future__ import annotations

import numpy as np

from robot_rl.core import Source

BOOL_COLUMNS = ("terminated", "truncated", "intervened")


def _ranges(rows: np.ndarray) -> str:
    """`rows` (sorted) as "a-b, c, ..." runs, at most 5 of them."""
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts, stops = np.r_[rows[0], rows[breaks + 1]], np.r_[rows[breaks], rows[-1]]
    runs = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, stops, strict=True)]
    return ", ".join(runs[:5]) + (f" and {len(runs) - 5} more runs" if len(runs) > 5 else "")


def value_problems(info: dict[str, np.ndarray], intact: np.ndarray, robots: int,
                   tasks: int) -> list[str]:
    """One line per kind of bad value among the `intact` rows of `step_info`, naming the rows."""
    checks = {
        "reward is NaN or infinite": ~np.isfinite(info["reward"]),
        "timestamp is NaN or infinite": ~np.isfinite(info["timestamp"]),
        "source is not a known source": ~np.isin(info["source"], [int(s) for s in Source]),
        "robot_id indexes no robot of the commit record": (info["robot_id"] < 0)
        | (info["robot_id"] >= robots),
        "task indexes no task of the commit record": (info["task"] < 0) | (info["task"] >= tasks),
        "episode_id or policy_version is negative": (info["episode_id"] < 0)
        | (info["policy_version"] < 0),
    }
    for column in BOOL_COLUMNS:  # a bool column read from damaged bytes can hold 2..255
        checks[f"{column} is not a boolean"] = info[column].view(np.uint8) > 1
    out = []
    for what, bad in checks.items():
        rows = np.flatnonzero(bad & intact)
        if len(rows):
            out.append(f"step_info rows {_ranges(rows)}: {what}")
    return out
