"""The schema check at the edge of the system: every field from the wire, typed and bounded.

Each check returns the value it accepts or raises ValueError naming the field and what it must be,
so `decode_message` turns one bad field into one ProtocolError line. The checks are O(fields) of
plain Python per transition; arrays are checked against the observation spec by the sink, once.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

import numpy as np

from robot_rl.core import Source, Transition

MAX_ID_CHARS = 128  # stream, robot and edge ids: they end up in the commit record
MAX_STREAMS = 64  # streams one edge may declare at its handshake
MAX_BATCH_ITEMS = 4096  # transitions in one batch (edges send 64)
INT64_MAX = (1 << 63) - 1
INT32_MAX = (1 << 31) - 1
TRANSITION_FIELDS = frozenset(Transition.__dataclass_fields__)
_MAX_SOURCE = max(int(s) for s in Source)


def check_id(value: object, what: str) -> str:
    """A short printable string: 1 to MAX_ID_CHARS characters, no control characters."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS or not value.isprintable():
        raise ValueError(f"{what} must be a printable string of 1 to {MAX_ID_CHARS} characters, "
                         f"got {_short(value)}")
    return value


def check_int(value: object, what: str, low: int = 0, high: int = INT64_MAX) -> int:
    """An integer (not a bool) in [low, high]: what an int64 column or mark can hold."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{what} must be an integer in [{low}, {high}], got {_short(value)}")
    return value


def check_float(value: object, what: str) -> float:
    """A finite number (int or float, not a bool)."""
    if type(value) not in (float, int) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ValueError(f"{what} must be a finite number, got {_short(value)}")
    return float(value)  # type: ignore[arg-type]


def check_bool(value: object, what: str) -> bool:
    """A real boolean: "False", 0 or None are refused, not stored as whatever they coerce to."""
    if type(value) is not bool:
        raise ValueError(f"{what} must be true or false, got {_short(value)}")
    return value


def check_arrays(value: object, what: str) -> dict[str, np.ndarray]:
    """A map of short string keys to numeric arrays (the spec check comes later, in the sink)."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and len(k) <= MAX_ID_CHARS and isinstance(v, np.ndarray)
            for k, v in value.items()):
        raise ValueError(f"{what} must be a map of names to arrays")
    return value


def check_list(value: object, what: str, max_items: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > max_items:
        raise ValueError(f"{what} must be a list of at most {max_items} items")
    return value


def transition_from_body(body: object, where: str = "transition") -> Transition:
    """The transition a wire map describes, each field checked; ValueError names a bad one."""
    if not isinstance(body, dict) or body.keys() != TRANSITION_FIELDS:
        keys = sorted(map(str, body)) if isinstance(body, dict) else type(body).__name__
        raise ValueError(f"{where} must be a map of exactly the fields of a Transition, "
                         f"got {_short(keys)}")
    try:  # field names are constants: `where` is formatted only for a refusal
        action = body["action"]
        if not isinstance(action, np.ndarray):
            raise ValueError(f"action must be an array, got {_short(action)}")
        return Transition(
            obs=check_arrays(body["obs"], "obs"), action=action,
            reward=check_float(body["reward"], "reward"),
            next_obs=check_arrays(body["next_obs"], "next_obs"),
            terminated=check_bool(body["terminated"], "terminated"),
            truncated=check_bool(body["truncated"], "truncated"),
            intervened=check_bool(body["intervened"], "intervened"),
            source=Source(check_int(body["source"], "source", 0, _MAX_SOURCE)),
            policy_version=check_int(body["policy_version"], "policy_version"),
            robot_id=check_id(body["robot_id"], "robot_id"),
            episode_id=check_int(body["episode_id"], "episode_id"),
            step=check_int(body["step"], "step", 0, INT32_MAX),
            wall_time=check_float(body["wall_time"], "wall_time"),
            mono_time=check_float(body["mono_time"], "mono_time"),
        )
    except ValueError as exc:
        raise ValueError(f"{where} {exc}") from None


def check_episode_ends(value: object, first_seq: int, count: int) -> tuple[tuple[int, bool], ...]:
    """(seq, success) pairs for transitions of this batch, or the one just before it."""
    ends = []
    for item in check_list(value, "episode_ends", count + 1):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"an episode end must be a [seq, success] pair, got {_short(item)}")
        seq = check_int(item[0], "episode end seq", first_seq - 1, first_seq + count - 1)
        ends.append((seq, check_bool(item[1], "episode end success")))
    return tuple(ends)


def _short(value: object) -> str:
    """A bounded rendering of a hostile value for an error line (never a repr of megabytes)."""
    return reprlib.repr(value)

