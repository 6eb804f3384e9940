"""Typed array specs: what an observation or action must look like, checked with clear errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from robot_rl.core.errors import SpecError


@dataclass(frozen=True)
class ArraySpec:
    """Shape, dtype and optional inclusive bounds of one array."""

    shape: tuple[int, ...]
    dtype: str
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        try:
            object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        except TypeError as exc:
            raise SpecError(f"unknown dtype {self.dtype!r}: use a numpy dtype name") from exc
        if np.dtype(self.dtype).kind == "O":
            raise SpecError("object dtypes are not allowed in specs: use a numeric dtype")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise SpecError(f"spec bounds are reversed: low={self.low} > high={self.high}")

    def validate(self, value: Any, name: str = "array") -> np.ndarray:
        """Return `value` as an array of this spec, or raise SpecError naming the mismatch."""
        arr = np.asarray(value)
        if arr.shape != self.shape:
            raise SpecError(f"{name}: expected shape {self.shape}, got {arr.shape}")
        if arr.dtype != np.dtype(self.dtype):
            if not np.can_cast(arr.dtype, self.dtype, casting="same_kind"):
                raise SpecError(f"{name}: expected dtype {self.dtype}, got {arr.dtype}")
            arr = arr.astype(self.dtype)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise SpecError(f"{name}: contains NaN or infinity")
        if self.low is not None and arr.size and arr.min() < self.low:
            raise SpecError(f"{name}: value {arr.min()} below the lower bound {self.low}")
        if self.high is not None and arr.size and arr.max() > self.high:
            raise SpecError(f"{name}: value {arr.max()} above the upper bound {self.high}")
        return arr

    def zeros(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=self.dtype)

    def clip(self, value: np.ndarray) -> np.ndarray:
        lo = -np.inf if self.low is None else self.low
        hi = np.inf if self.high is None else self.high
        return np.clip(value, lo, hi).astype(self.dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArraySpec:
        return cls(tuple(data["shape"]), data["dtype"], data.get("low"), data.get("high"))


@dataclass(frozen=True)
class DictSpec:
    """A named set of array specs, e.g. an observation with proprio and camera images."""

    fields: Mapping[str, ArraySpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, spec in self.fields.items():
            if not isinstance(spec, ArraySpec):
                raise SpecError(f"observation field {key!r} must be an ArraySpec, got {spec!r}")
        object.__setattr__(self, "fields", MappingProxyType(dict(sorted(self.fields.items()))))

    def __getitem__(self, key: str) -> ArraySpec:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, key: object) -> bool:
        return key in self.fields

    def __hash__(self) -> int:
        return hash(tuple(self.fields.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DictSpec) and dict(self.fields) == dict(other.fields)

    def items(self) -> Iterator[tuple[str, ArraySpec]]:
        return iter(self.fields.items())

    def validate(
        self, value: Mapping[str, Any], name: str = "observation"
    ) -> dict[str, np.ndarray]:
        """Return a dict of validated arrays, or raise SpecError naming the bad or missing key."""
        if not isinstance(value, Mapping):
            raise SpecError(f"{name}: expected a mapping of arrays, got {type(value).__name__}")
        missing = sorted(set(self.fields) - set(value))
        extra = sorted(set(value) - set(self.fields))
        if missing or extra:
            raise SpecError(f"{name}: missing keys {missing}, unexpected keys {extra}")
        return {k: spec.validate(value[k], f"{name}[{k!r}]") for k, spec in self.fields.items()}

    def zeros(self) -> dict[str, np.ndarray]:
        return {k: spec.zeros() for k, spec in self.fields.items()}

    def to_json(self) -> dict[str, Any]:
        return {k: spec.to_json() for k, spec in self.fields.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DictSpec:
        return cls({k: ArraySpec.from_json(v) for k, v in data.items()})

    def digest(self) -> str:
        """A stable short hash, so two peers can check they speak about the same layout."""
        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
