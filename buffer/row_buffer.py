"""A table's rows that are not in sealed chunks yet (the committed unsealed ones, then the staged
ones) in one preallocated array per column, reused commit after commit.

Staging copies rows straight into it and a commit reads them as views: no join of the parts and
no fresh memory per commit (fresh pages cost more than the copy: the kernel zeroes each one).
Rows sealed by a commit are dropped from the front; the rest move to the front only when the
space is needed, so views handed out stay valid until the next `append`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from robot_rl.core import ArraySpec


class RowBuffer:
    """Rows [start, end) of equal-length columns."""

    def __init__(self, specs: dict[str, ArraySpec], capacity: int = 16) -> None:
        self.specs = specs
        self.cols = {k: np.empty((capacity, *s.shape), s.dtype) for k, s in specs.items()}
        self.start = self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def view(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        """Rows lo..hi (counted from the first row held) as views, valid until `append`."""
        hi = len(self) if hi is None else hi
        return {k: v[self.start + lo: self.start + hi] for k, v in self.cols.items()}

    def append(self, columns: Mapping[str, np.ndarray | Sequence[np.ndarray]]) -> None:
        """Copy rows in: per column an array of rows, or a sequence of one array per row."""
        n = len(next(iter(columns.values())))
        self._make_room(n)
        for k, v in self.cols.items():
            rows = columns[k]
            if isinstance(rows, np.ndarray):
                v[self.end: self.end + n] = rows
            else:
                for i, row in enumerate(rows):
                    v[self.end + i] = row
        self.end += n

    def drop_front(self, n: int) -> None:
        """Forget the first `n` rows (sealed into chunks)."""
        self.start += n

    def truncate(self, n: int) -> None:
        """Keep only the first `n` rows (forget staged rows)."""
        self.end = self.start + n

    def _make_room(self, n: int) -> None:
        capacity = len(next(iter(self.cols.values())))
        if self.end + n <= capacity:
            return
        held = len(self)
        if held + n > capacity:  # grow by doubling, moving the rows to the front
            size = max(held + n, 2 * capacity)
            self.cols = {k: _moved(v, self.start, self.end, np.empty((size, *v.shape[1:]),
                                                                   v.dtype))
                         for k, v in self.cols.items()}
        else:  # move the rows to the front
            for v in self.cols.values():
                v[:held] = v[self.start: self.end]
        self.start, self.end = 0, held


def _moved(old: np.ndarray, start: int, end: int, new: np.ndarray) -> np.ndarray:
    new[: end - start] = old[start:end]
    return new
