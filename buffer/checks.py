"""Transitions checked against the buffer's specs a whole batch at a time: each key's arrays are
stacked once and checked once (dtype, finiteness, bounds), instead of a dozen small checks per
transition. A batch that fails is checked again transition by transition, so the error names
the first bad transition and field exactly as `ArraySpec.validate` would."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from robot_rl.core import ArraySpec, DictSpec, SpecError, Transition


@dataclass(frozen=True)
class Columns:
    """A batch's observations, next observations (stacked per key) and actions, as the specs
    say (dtype cast like `ArraySpec.validate` casts)."""

    obs: dict[str, np.ndarray]
    next_obs: dict[str, np.ndarray]
    action: np.ndarray


class _Refused(Exception):
    """Something in the stacked batch is off: find which transition, one by one."""


def _checked(spec: ArraySpec, stacked: np.ndarray) -> np.ndarray:
    if stacked.shape[1:] != spec.shape:
        raise _Refused
    dtype = np.dtype(spec.dtype)
    if stacked.dtype != dtype:
        if not np.can_cast(stacked.dtype, dtype, casting="same_kind"):
            raise _Refused
        stacked = stacked.astype(dtype)
    if dtype.kind == "f" and not np.isfinite(stacked).all():
        raise _Refused
    if dtype.kind in "iu":  # bounds the dtype itself guarantees need no pass over the data
        info = np.iinfo(dtype)
        low = None if spec.low is not None and spec.low <= info.min else spec.low
        high = None if spec.high is not None and spec.high >= info.max else spec.high
    else:
        low, high = spec.low, spec.high
    if stacked.size and ((low is not None and stacked.min() < low)
                         or (high is not None and stacked.max() > high)):
        raise _Refused
    return stacked


def _stack(spec: DictSpec, values: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = spec.fields.keys()
    if not all(isinstance(v, Mapping) and v.keys() == keys for v in values):
        raise _Refused
    return {k: _checked(s, np.stack([v[k] for v in values])) for k, s in spec.items()}


def checked_columns(obs_spec: DictSpec, action_spec: ArraySpec,
                    transitions: Sequence[Transition], where: Callable[[int], str]) -> Columns:
    """The batch's columns, or SpecError naming the first bad transition (`where(i)` says what
    to call transition i, e.g. "stream a seq 7") and its field."""
    try:
        return Columns(_stack(obs_spec, [t.obs for t in transitions]),
                       _stack(obs_spec, [t.next_obs for t in transitions]),
                       _checked(action_spec, np.stack([np.asarray(t.action)
                                                       for t in transitions])))
    except (_Refused, ValueError, TypeError):
        for i, t in enumerate(transitions):
            obs_spec.validate(t.obs, f"{where(i)} obs")
            obs_spec.validate(t.next_obs, f"{where(i)} next_obs")
            action_spec.validate(t.action, f"{where(i)} action")
        raise SpecError(f"{where(0)}: the batch's arrays do not stack; send one layout per "
                        "batch") from None
