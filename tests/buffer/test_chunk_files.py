"""Chunk files written and read without zarr's per-call machinery are the files zarr writes and
reads: each direction checked against zarr itself, for both compressors the buffer uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from buffer.chunk_files import chunk_decoder, chunk_encoder, chunk_path

COMPRESSORS = {"zstd": ZstdCodec(level=3), "blosc": BloscCodec(cname="lz4", clevel=5)}


def array(tmp_path: Path, compressor: str, dtype: str) -> zarr.Array:
    return zarr.create_array(str(tmp_path / "a"), shape=(64, 5, 3), chunks=(16, 5, 3),
                             dtype=dtype, compressors=COMPRESSORS[compressor],
                             chunk_key_encoding={"name": "default", "separator": "."})


def values(dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 255, (16, 5, 3)) if dtype == "uint8"
            else rng.normal(size=(16, 5, 3))).astype(dtype)


@pytest.mark.parametrize("compressor", sorted(COMPRESSORS))
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_decoder_reads_what_zarr_wrote_and_zarr_reads_what_the_encoder_wrote(
        tmp_path: Path, compressor: str, dtype: str) -> None:
    arr = array(tmp_path, compressor, dtype)
    by_zarr, by_encoder = values(dtype, 0), values(dtype, 1)
    arr[16:32] = by_zarr
    chunk_path(tmp_path / "a", arr, 2).write_bytes(chunk_encoder(arr)(by_encoder))
    decode = chunk_decoder(arr)
    np.testing.assert_array_equal(decode(chunk_path(tmp_path / "a", arr, 1).read_bytes()),
                                  by_zarr)
    np.testing.assert_array_equal(arr[32:48], by_encoder)


def test_bytes_that_are_not_one_chunk_do_not_decode(tmp_path: Path) -> None:
    arr = array(tmp_path, "blosc", "float32")  # blosc decodes a short block without complaint
    short = chunk_encoder(arr)(values("float32", 0)[:8])
    with pytest.raises(ValueError, match="a chunk has 960"):
        chunk_decoder(arr)(short)
    with pytest.raises(RuntimeError):
        chunk_decoder(array(tmp_path / "z", "zstd", "uint8"))(b"not zstd")


def test_other_layouts_are_left_to_zarr(tmp_path: Path) -> None:
    arr = zarr.create_array(str(tmp_path / "a"), shape=(16,), chunks=(4,), dtype="float32",
                            compressors=None)
    assert chunk_encoder(arr) is None and chunk_decoder(arr) is None
