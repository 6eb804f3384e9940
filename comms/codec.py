"""The wire codec: msgpack plus numpy arrays laid out beside it; no pickle, a whitelist of types.

A frame is the msgpack encoding of a value in which every array is an extension record: its
dtype and shape, then either its raw little-endian bytes (arrays up to INLINE_BYTES: copying a
few bytes costs less than aligning them) or the offset of its bytes in the frame's "region". The
region holds the large arrays and comes first, written as a msgpack extension of its own, so a
frame is a valid msgpack stream of one or two objects:

    [ext 32, type 2: region = array bytes, each 16-byte aligned in the frame] [value]

Frames of protocol 1 (every array inline) still decode: spools written by it replay as they are.

Encoding copies each large array's bytes once, into the frame; decoding copies none of them:
they become read-only views of the received frame (and keep it alive).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

from robot_rl.core import CommsError

INLINE_EXT = 1  # an array in its record: dtype, ndim, shape, its bytes (protocol 1's only kind)
REGION_EXT = 2  # the frame's large arrays' bytes
ARRAY_EXT = 3  # a large array: dtype, ndim, offset in the region, shape
INLINE_BYTES = 256
MAX_NDIM = 32
ALIGN = 16
# The dtypes that may cross the wire, by their numpy `.str`; everything else is refused.
ALLOWED_DTYPES = frozenset({
    "|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8",
})
# array records: dtype str (3 ascii chars after the byte-order char), ndim, [offset,] shape
_RECORDS = [struct.Struct(f"<3sBQ{n}Q") for n in range(MAX_NDIM + 1)]
_INLINE = [struct.Struct(f"<3sB{n}Q") for n in range(MAX_NDIM + 1)]
_REGION = struct.Struct(">BIb")  # msgpack ext 32: 0xc9, length, type
_PADDING = bytes(ALIGN)


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


class _Region:
    """The arrays of one frame being encoded, in order, with the padding that aligns each."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.size = 0

    def default(self, obj: Any) -> Any:
        """msgpack's hook for every value it cannot pack itself: an array becomes a record."""
        if isinstance(obj, np.ndarray):
            code = _CODES.get(obj.dtype)
            if code is None:  # big-endian twin of an allowed dtype, or refused
                wire = _wire_dtype(obj.dtype)
                obj, code = obj.astype(wire), _CODES[wire]
            if obj.ndim > MAX_NDIM:
                raise CodecError(f"array has {obj.ndim} dimensions; at most {MAX_NDIM} may be sent")
            # tuple.__new__ skips ExtType's Python-level checks (both fields are known good)
            if obj.nbytes <= INLINE_BYTES:
                return tuple.__new__(msgpack.ExtType, (INLINE_EXT, _INLINE[obj.ndim].pack(
                    code, obj.ndim, *obj.shape) + obj.tobytes()))
            if not obj.flags.c_contiguous:  # (a 0-d array always is)
                obj = np.ascontiguousarray(obj)
            pad = -(_REGION.size + self.size) % ALIGN
            if pad:
                self.parts.append(_PADDING[:pad])
            offset = self.size + pad
            self.parts.append(obj)  # its buffer: copied once, by the join in `encode`
            self.size = offset + obj.nbytes
            return tuple.__new__(msgpack.ExtType, (
                ARRAY_EXT, _RECORDS[obj.ndim].pack(code, obj.ndim, offset, *obj.shape)))
        if isinstance(obj, np.generic):
            _wire_dtype(obj.dtype)
            return obj.item()
        raise CodecError(
            f"{type(obj).__name__} cannot cross the wire; send None, bool, int, float, str, "
            "bytes, lists, str-keyed dicts or numeric numpy arrays"
        )


def encode(value: Any) -> bytes:
    """Encode a tree of whitelisted values; raise CodecError naming the first refused one."""
    region = _Region()
    try:
        packed = msgpack.packb(value, default=region.default, use_bin_type=True,
                               strict_types=False)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode value: {exc}") from None
    if not region.parts:
        return packed
    if region.size > 0xFFFFFFFF:
        raise CodecError(f"{region.size} bytes of arrays in one frame; at most 4 GiB fit")
    return b"".join([_REGION.pack(0xC9, region.size, REGION_EXT), *region.parts, packed])


def _array_hook(region: memoryview) -> Callable[[int, bytes], np.ndarray]:
    """msgpack's extension hook for a frame whose array region is `region`."""

    def hook(code: int, record: bytes) -> np.ndarray:
        if code == ARRAY_EXT:
            layouts, buffer, what = _RECORDS, region, "the frame's array region"
        elif code == INLINE_EXT:
            layouts, buffer, what = _INLINE, record, "its record"
        else:
            raise CodecError(f"unknown msgpack extension type {code}")
        if len(record) < layouts[0].size:
            raise CodecError(f"array record of {len(record)} bytes is shorter than its header")
        ndim = record[3]
        if ndim > MAX_NDIM:
            raise CodecError(f"array record claims {ndim} dimensions; at most {MAX_NDIM}")
        layout = layouts[ndim]
        if len(record) < layout.size or (code == ARRAY_EXT and len(record) != layout.size):
            raise CodecError(f"array record of {ndim} dimensions has {len(record)} bytes")
        fields = layout.unpack_from(record)
        dtype = _DTYPES.get(fields[0])
        if dtype is None:
            raise CodecError(f"array record has dtype code {fields[0]!r}, which is not allowed")
        offset, shape = (fields[2], fields[3:]) if code == ARRAY_EXT else (layout.size, fields[2:])
        try:
            arr = np.ndarray(shape, dtype, buffer, offset)  # a read-only view: no copy
        except (TypeError, ValueError):
            arr = None
        if arr is None or (code == INLINE_EXT and offset + arr.nbytes != len(record)):
            raise CodecError(f"array of shape {shape} {dtype} at offset {offset} does not fit "
                             f"{what} ({len(buffer)} bytes)")
        return arr

    return hook


_NO_REGION = _array_hook(memoryview(b""))


def decode(data: bytes | memoryview) -> Any:
    """Decode bytes from the wire; anything malformed raises CodecError, never something else.
    Arrays in the result are read-only views of `data`."""
    hook = _NO_REGION
    if data[:1] == b"\xc9" and len(data) >= _REGION.size and data[5] == REGION_EXT:
        view = memoryview(data)
        size = int.from_bytes(view[1:5], "big")
        end = _REGION.size + size
        if len(view) < end:
            raise CodecError(f"frame announces {size} bytes of array data, has "
                             f"{len(view) - _REGION.size}")
        hook, data = _array_hook(view[_REGION.size:end]), view[end:]
    try:
        return msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=True, use_list=True)
    except CodecError:
        raise
    except (msgpack.UnpackException, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CodecError(f"malformed frame: {type(exc).__name__}: {exc}") from None
