"""Rows of several columns in one file: a NumPy `.npy` holding a structured array (a field per
column; no pickle). One header and one write per file, where an `.npz` costs a zip member, a
header and a CRC per column: WAL segments and open-episode tails are written at every commit."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from robot_rl.core import ArraySpec


def rows_dtype(specs: Mapping[str, ArraySpec]) -> np.dtype:
    """The structured dtype of rows of these columns."""
    return np.dtype([(k, s.dtype, s.shape) for k, s in specs.items()])


def encode_rows(cols: Mapping[str, np.ndarray], dtype: np.dtype) -> memoryview:
    """The file's bytes for equal-length columns (each as its field of `dtype` says)."""
    table = np.empty(len(next(iter(cols.values()))), dtype)
    for k in dtype.names or ():
        table[k] = cols[k]
    blob = io.BytesIO()
    np.save(blob, table, allow_pickle=False)
    return blob.getbuffer()


def decode_rows(data: bytes, dtype: np.dtype) -> dict[str, np.ndarray]:
    """The columns in a file's bytes; ValueError if it does not hold rows of `dtype`."""
    table = np.load(io.BytesIO(data), allow_pickle=False)
    if table.dtype != dtype or table.ndim != 1:
        raise ValueError(f"it holds {table.dtype} x {table.shape}, not rows of {dtype}")
    return {k: table[k] for k in dtype.names or ()}
