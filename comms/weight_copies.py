"""Copies a weight sync makes beside a control loop, in budgeted slices.

On the CPU, a version's copies (a patched tensor's base, an fp16 tensor widened) run on copy
threads, one slice of at most the budget's capacity at a time, each slice waiting for the
ByteBudget: a large version is rebuilt without taking the cores or the memory bandwidth in long
bursts while the control loop needs them. On CUDA, comms.cuda_copies moves a version to the
device the same way, on a dedicated stream.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from comms.weight_sync_budget import ByteBudget
from robot_rl.core.priority import background_priority

SLICE_BYTES = 1 << 20  # the step of a copy without a budget (and the most a budgeted one takes)


def slice_bytes(budget: ByteBudget | None) -> int:
    """The bytes one copy step moves: a slice, and at most one interval's worth of `budget`."""
    return SLICE_BYTES if budget is None else min(SLICE_BYTES, budget.capacity)


class HostCopier:
    """Budgeted copies of host arrays on `threads` copy threads (slices of one array are spread
    over them; the budget is shared, so more threads never mean more bytes per interval)."""

    def __init__(self, budget: ByteBudget | None = None, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"a copier needs at least one thread, got {threads}")
        self.budget = budget
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="weight-copy",
                                        initializer=background_priority)
        self.copied = 0  # bytes written so far

    def copy(self, src: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        """A new C-contiguous array with `src`'s elements (cast to `dtype` when given)."""
        out = np.empty(src.shape, dtype or src.dtype)
        flat_src, flat_out = src.reshape(-1), out.reshape(-1)
        per = max(out.itemsize, src.itemsize)  # bytes an element costs (the wider side)
        step = max(1, slice_bytes(self.budget) // per)

        def one(lo: int) -> None:
            hi = min(lo + step, src.size)
            if self.budget is not None:
                self.budget.acquire((hi - lo) * per)
            flat_out[lo:hi] = flat_src[lo:hi]

        for future in [self._pool.submit(one, lo) for lo in range(0, src.size, step)]:
            future.result()
        self.copied += out.nbytes
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True)
