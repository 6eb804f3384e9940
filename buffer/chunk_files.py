"""Whole chunks of a Zarr array written and read as zarr itself would, without its per-call
machinery.

Going through `zarr.Array` cost about as much CPU again as the codec: selection, buffers and an
event-loop round trip per call and per column. Sealing a chunk paid it once per column; a live
reader (the learner following a fleet's commits, the cache loading chunks) paid it for every
chunk it read. For the layouts this buffer creates (little-endian bytes, then one Zstd or Blosc
compressor) the chunk file is that compressor's output, which numcodecs, the library zarr
itself calls, produces and reads here; any other layout is left to zarr. Every sealed chunk's
CRC-32 is checked when read, so a file zarr would read differently would be caught, not trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc, Zstd
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

Encoder = Callable[[np.ndarray], bytes]
Decoder = Callable[[bytes], np.ndarray]
_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def _codec(arr: zarr.Array) -> Zstd | Blosc | None:
    """The numcodecs codec that makes `arr`'s chunk files, or None for a layout not covered."""
    codecs = arr.metadata.codecs
    if (len(codecs) != 2 or not isinstance(codecs[0], BytesCodec)
            or (arr.dtype.itemsize > 1 and codecs[0].endian is None)
            or (codecs[0].endian is not None and codecs[0].endian.value != "little")
            or np.dtype(arr.dtype).byteorder == ">"):
        return None
    compressor = codecs[1]
    if isinstance(compressor, ZstdCodec):
        return Zstd(level=compressor.level, checksum=compressor.checksum)
    if isinstance(compressor, BloscCodec):
        return Blosc(cname=compressor.cname.value, clevel=compressor.clevel,
                     shuffle=_SHUFFLES[compressor.shuffle.value],
                     blocksize=compressor.blocksize, typesize=compressor.typesize)
    return None


def chunk_encoder(arr: zarr.Array) -> Encoder | None:
    """The bytes zarr stores for one whole chunk of `arr`, or None for a layout not covered."""
    codec = _codec(arr)
    if codec is None:
        return None
    return lambda block: bytes(codec.encode(np.ascontiguousarray(block)))


def chunk_decoder(arr: zarr.Array) -> Decoder | None:
    """The values of one whole chunk of `arr` from its file's bytes (raising when they do not
    decode to exactly one chunk), or None for a layout not covered."""
    codec = _codec(arr)
    if codec is None:
        return None
    dtype, shape = np.dtype(arr.dtype).newbyteorder("<"), tuple(arr.chunks)
    size = dtype.itemsize * int(np.prod(shape))

    def decode(data: bytes) -> np.ndarray:
        raw = codec.decode(data)
        if len(raw) != size:
            raise ValueError(f"decodes to {len(raw)} bytes, a chunk has {size}")
        return np.frombuffer(raw, dtype).reshape(shape)  # read-only: callers copy what they keep

    return decode


def chunk_path(root: Path, arr: zarr.Array, chunk: int) -> Path:
    """The file of chunk `chunk` (along the first axis) of the array stored at `root`."""
    coords = (chunk,) + (0,) * (len(arr.shape) - 1)
    return root / arr.metadata.chunk_key_encoding.encode_chunk_key(coords)
