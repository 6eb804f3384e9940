"""Whole chunks of a Zarr array written as zarr itself would write them, without its per-call
machinery.

Sealing a chunk through `zarr.Array.__setitem__` cost about as much CPU again as compressing it
(selection, buffers, an event-loop round trip per call and per column). For the layouts this
buffer creates (little-endian bytes, then one Zstd or Blosc compressor) the chunk file is that
compressor's output, which numcodecs, the library zarr itself calls, produces here; any other
layout is left to zarr. Reading always goes through zarr, and every sealed chunk's CRC-32 is
checked when read, so a file zarr could not read back would be caught, not trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc, Zstd
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

Encoder = Callable[[np.ndarray], bytes]
_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def chunk_encoder(arr: zarr.Array) -> Encoder | None:
    """The bytes zarr stores for one whole chunk of `arr`, or None for a layout not covered."""
    codecs = arr.metadata.codecs
    if (len(codecs) != 2 or not isinstance(codecs[0], BytesCodec)
            or (arr.dtype.itemsize > 1 and codecs[0].endian is None)
            or (codecs[0].endian is not None and codecs[0].endian.value != "little")
            or np.dtype(arr.dtype).byteorder == ">"):
        return None
    compressor = codecs[1]
    if isinstance(compressor, ZstdCodec):
        codec = Zstd(level=compressor.level, checksum=compressor.checksum)
    elif isinstance(compressor, BloscCodec):
        codec = Blosc(cname=compressor.cname.value, clevel=compressor.clevel,
                      shuffle=_SHUFFLES[compressor.shuffle.value],
                      blocksize=compressor.blocksize, typesize=compressor.typesize)
    else:
        return None
    return lambda block: bytes(codec.encode(np.ascontiguousarray(block)))


def chunk_path(root: Path, arr: zarr.Array, chunk: int) -> Path:
    """The file of chunk `chunk` (along the first axis) of the array stored at `root`."""
    coords = (chunk,) + (0,) * (len(arr.shape) - 1)
    return root / arr.metadata.chunk_key_encoding.encode_chunk_key(coords)
