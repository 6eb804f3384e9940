"""The wire codec: msgpack plus one numpy extension type; no pickle, a whitelist of types.

Arrays travel as raw little-endian bytes behind a small header. Encoding copies an array's bytes
once into the extension payload (msgpack then lays the frame out); decoding views the payload
that msgpack hands the extension hook with np.frombuffer, so decoded arrays are read-only views
and the array data is copied once, by msgpack, never by this module.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import numpy as np

from robot_rl.core import CommsError

NDARRAY_EXT = 1
MAX_NDIM = 32
# The dtypes that may cross the wire, by their numpy `.str`; everything else is refused.
ALLOWED_DTYPES = frozenset({
    "|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8",
})
_HEADER = struct.Struct("<3sB")  # dtype str (3 ascii chars after the byte-order char), ndim


class CodecError(CommsError):
    """A value cannot be encoded, or bytes from the wire are not a valid frame."""


def _wire_dtype(dtype: np.dtype) -> np.dtype:
    """The little-endian twin of `dtype`, or CodecError when the dtype is not whitelisted."""
    wire = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
    if wire.str not in ALLOWED_DTYPES:
        raise CodecError(
            f"dtype {dtype} cannot cross the wire; allowed: bool, (u)int8-64, float16/32/64"
        )
    return wire


# the 3-byte wire code of each allowed dtype and back, computed once: the codec is on the hot path
_CODES = {np.dtype(s): s[1:].encode("ascii").ljust(3) for s in ALLOWED_DTYPES}
_DTYPES = {code: dtype for dtype, code in _CODES.items()}
_SHAPES = [struct.Struct(f"<{n}Q") for n in range(MAX_NDIM + 1)]


def _pack_array(arr: np.ndarray) -> msgpack.ExtType:
    code = _CODES.get(arr.dtype)
    if code is None:  # big-endian twin of an allowed dtype, or refused
        wire = _wire_dtype(arr.dtype)
        arr, code = arr.astype(wire), _CODES[wire]
    if arr.ndim > MAX_NDIM:
        raise CodecError(f"array has {arr.ndim} dimensions; at most {MAX_NDIM} may be sent")
    if not arr.flags.c_contiguous:  # (a 0-d array always is)
        arr = np.ascontiguousarray(arr)
    header = _HEADER.pack(code, arr.ndim) + _SHAPES[arr.ndim].pack(*arr.shape)
    return msgpack.ExtType(NDARRAY_EXT, header + arr.data)  # one copy of the array's bytes


def _unpack_array(data: bytes) -> np.ndarray:
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise CodecError("array frame is shorter than its header")
    code, ndim = _HEADER.unpack_from(view)
    if ndim > MAX_NDIM:
        raise CodecError(f"array frame claims {ndim} dimensions; at most {MAX_NDIM}")
    dtype = _DTYPES.get(code)
    if dtype is None:
        raise CodecError(f"array frame has dtype code {code!r}, which is not allowed")
    offset = _HEADER.size + 8 * ndim
    if len(view) < offset:
        raise CodecError("array frame is shorter than its shape")
    shape = _SHAPES[ndim].unpack_from(view, _HEADER.size)
    count = math.prod(shape)  # exact for any shape (np.prod is slower and may overflow)
    if len(view) - offset != count * dtype.itemsize:
        raise CodecError(
            f"array frame of shape {shape} {dtype} needs {count * dtype.itemsize} bytes, "
            f"has {len(view) - offset}"
        )
    return np.frombuffer(view, dtype=dtype, offset=offset, count=count).reshape(shape)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _pack_array(obj)
    if isinstance(obj, np.generic):
        _wire_dtype(obj.dtype)
        return obj.item()
    raise CodecError(
        f"{type(obj).__name__} cannot cross the wire; send None, bool, int, float, str, bytes, "
        "lists, str-keyed dicts or numeric numpy arrays"
    )


def _ext_hook(code: int, data: bytes) -> Any:
    if code != NDARRAY_EXT:
        raise CodecError(f"unknown msgpack extension type {code}")
    return _unpack_array(data)


def encode(value: Any) -> bytes:
    """Encode a tree of whitelisted values; raise CodecError naming the first refused one."""
    try:
        return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=False)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode value: {exc}") from None


def decode(data: bytes | memoryview) -> Any:
    """Decode bytes from the wire; anything malformed raises CodecError, never something else."""
    try:
        return msgpack.unpackb(
            data, raw=False, ext_hook=_ext_hook, strict_map_key=True, use_list=True,
        )
    except CodecError:
        raise
    except (msgpack.UnpackException, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CodecError(f"malformed frame: {type(exc).__name__}: {exc}") from None
