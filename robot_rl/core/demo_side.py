"""RLPD's demo side, defined once: which steps are demonstrations, and each batch's share of them.

The session routes transitions with `is_demo_side`, the buffer's mix (`buffer.mixing.DemoMix`)
splits batches with `batch_split`, and `algo.params.demo_fraction` is the one knob.
"""

from __future__ import annotations

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.types import Source

DEMO_SIDE_SOURCES = (Source.HUMAN, Source.DEMO, Source.SCRIPTED)
"""Sources whose actions RLPD learns from as demonstrations (a hold is no demonstration)."""

DEMO_FRACTION_ADVICE = ("the share of demo-side data (demos, takeovers and buffer.priors) in each "
                        "batch is algo.params.demo_fraction, with algo=rlpd")
"""What to use instead of the mixing knobs that were removed."""


def is_demo_side(source: Source | np.ndarray, intervened: bool | np.ndarray) -> bool | np.ndarray:
    """A person's, a demo's or a script's action, or any step a person took over; for single
    values or for columns of a buffer or batch."""
    if isinstance(source, np.ndarray):
        return np.isin(source, [int(s) for s in DEMO_SIDE_SOURCES]) | np.asarray(intervened, bool)
    return bool(intervened) or Source(source) in DEMO_SIDE_SOURCES


def batch_split(batch_size: int, demo_fraction: float) -> tuple[int, int]:
    """(online rows, demo-side rows) of one batch; the demo side gets round(fraction * size)."""
    if not 0.0 <= demo_fraction <= 1.0:
        raise ConfigError(f"algo.params.demo_fraction must be in [0, 1], got {demo_fraction}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    demo = int(round(batch_size * demo_fraction))
    return batch_size - demo, demo
