"""Per-step metadata of every committed row, held in RAM, and where each next_obs lives."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from buffer.schema import STEP_META
from robot_rl.core import DictSpec, Observation


class Growable:
    """An array that grows by doubling, so appending n rows costs O(n) amortised."""

    def __init__(self, dtype: str, shape: tuple[int, ...] = (), fill: float = 0) -> None:
        self.fill = fill
        self.data = np.full((16, *shape), fill, dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.data):
            grown = np.full((max(need, 2 * len(self.data)), *self.data.shape[1:]), self.fill,
                            self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n: need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.n]


class StepIndex:
    """Metadata columns, quarantine mask, successor rows and tail observations of all rows."""

    def __init__(self, obs_spec: DictSpec) -> None:
        self.info = {k: Growable(d) for k, d in STEP_META.items()}
        self.next_row = Growable("int64", fill=-1)  # the row whose obs is this row's next_obs
        self.tail_of = Growable("int64", fill=-1)  # index into tail_obs of this row's next_obs
        self.quarantined = Growable("bool")
        self.tail_obs = {k: Growable(s.dtype, s.shape) for k, s in obs_spec.items()}
        self.open_tails: dict[int, Observation] = {}  # next obs of open episodes' last rows
        self._open_rows = np.zeros(0, np.int64)
        self.version = 0

    def __len__(self) -> int:
        return self.next_row.n

    def col(self, name: str) -> np.ndarray:
        return self.info[name].view

    def extend(self, info: dict[str, np.ndarray], tails: dict[str, np.ndarray]) -> None:
        """Add committed rows and tail observations, and link rows to their successors."""
        start, n = len(self), len(info["prev_row"])
        for k, g in self.info.items():
            g.extend(info[k])
        for g in (self.next_row, self.tail_of):
            g.extend(np.full(n, -1, np.int64))
        self.quarantined.extend(np.zeros(n, bool))
        prev = info["prev_row"]
        linked = np.flatnonzero(prev >= 0)
        self.next_row.data[prev[linked]] = start + linked
        if len(tails["row"]):
            first = self.tail_obs[next(iter(self.tail_obs))].n
            for k, g in self.tail_obs.items():
                g.extend(tails[f"obs/{k}"])
            self.tail_of.data[tails["row"]] = first + np.arange(len(tails["row"]))
        self.version += 1

    def quarantine(self, lo: int, hi: int) -> None:
        self.quarantined.data[lo: min(hi, len(self))] = True
        self.version += 1

    def quarantine_mask(self, mask: np.ndarray) -> None:
        self.quarantined.view[: len(mask)] |= mask
        self.version += 1

    def set_open_tails(self, tails: dict[int, Observation]) -> None:
        """The next observations of open episodes' last rows, as of the latest commit (they
        live outside the tails table, and change with every commit)."""
        self.open_tails = dict(tails)
        self._open_rows = np.fromiter(tails, np.int64, len(tails))
        self.version += 1

    def has_tail(self, rows: np.ndarray) -> np.ndarray:
        """Rows whose next observation is a tail (of the table, or of an open episode)."""
        return (self.tail_of.data[rows] >= 0) | np.isin(rows, self._open_rows)

    def sampleable(self, rows: np.ndarray) -> np.ndarray:
        """Rows that are not quarantined and whose next observation is known (a tail, or a
        successor row that is not quarantined itself)."""
        nxt = self.next_row.data[rows]
        successor = (nxt >= 0) & ~self.quarantined.data[np.maximum(nxt, 0)]
        return (successor | self.has_tail(rows)) & ~self.quarantined.data[rows]

    def tails(self, keys: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        """The tail observation of each of `rows` (which all have one), for each of `keys`."""
        at = self.tail_of.data[rows]
        stored, open_ = np.maximum(at, 0), np.flatnonzero(at < 0)
        out = {k: self.tail_obs[k].data[stored] for k in keys}
        for i in open_:
            tail = self.open_tails[int(rows[i])]
            for k in keys:
                out[k][i] = tail[k]
        return out
