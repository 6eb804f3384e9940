"""The wire codec: exact round trips of whitelisted values, clear refusals of everything else."""

from __future__ import annotations

import datetime
import pickle

import msgpack
import numpy as np
import pytest

from comms.codec import CodecError, decode, encode

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 4), (128, 128, 3)])
def test_arrays_round_trip_exactly(dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    arr = np.asarray(rng.random(shape) * 100).astype(dtype)
    out = decode(encode({"a": arr}))["a"]
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_decoded_arrays_are_read_only_views_of_the_frame() -> None:
    image = np.arange(128 * 128 * 3, dtype=np.uint8).reshape(128, 128, 3)
    out = decode(encode(image))
    assert not out.flags.writeable
    assert out.base is not None  # a view on the received bytes, not a copy


def test_non_contiguous_and_big_endian_arrays_are_sent_as_little_endian() -> None:
    arr = np.arange(20, dtype=">f4").reshape(4, 5)[:, ::2]
    out = decode(encode(arr))
    assert out.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(out, arr)


def test_plain_values_and_numpy_scalars_round_trip() -> None:
    value = {"n": None, "b": True, "i": -3, "f": 1.5, "s": "x", "by": b"\x00\x01",
             "l": [1, [2, 3]], "np": np.float32(2.5), "ni": np.int64(7)}
    out = decode(encode(value))
    assert out["np"] == 2.5 and out["ni"] == 7 and out["by"] == b"\x00\x01"
    assert out["l"] == [1, [2, 3]]


@pytest.mark.parametrize("value, what", [
    (np.array([object()], dtype=object), "object"),
    (np.array(["a", "b"]), "<U1"),
    (np.array([1 + 2j]), "complex128"),
    (np.zeros(2, dtype=[("x", "f4")]), "dtype"),
    (datetime.datetime(2020, 1, 1), "datetime"),
    ({1, 2}, "set"),
    (object(), "object"),
])
def test_values_outside_the_whitelist_are_refused(value: object, what: str) -> None:
    with pytest.raises(CodecError, match=what):
        encode({"x": value})


def test_non_string_map_keys_are_refused_on_decode() -> None:
    with pytest.raises(CodecError, match="malformed"):
        decode(msgpack.packb({1: 2}))


@pytest.mark.parametrize("frame", [
    b"", b"\xc1", b"\x92\x01", pickle.dumps({"a": 1}), b"\xd4\x07\x00",  # unknown ext type 7
    msgpack.packb(msgpack.ExtType(1, b"<f4\x01")),  # header without shape
    msgpack.packb(msgpack.ExtType(1, b"f4 \x01" + (10).to_bytes(8, "little") + b"\x00" * 8)),
    msgpack.packb(msgpack.ExtType(1, b"O  \x01" + (1).to_bytes(8, "little") + b"\x00" * 8)),
    msgpack.packb(msgpack.ExtType(1, b"u1 \x40")),  # 64 dimensions
])
def test_malformed_frames_raise_codec_error_only(frame: bytes) -> None:
    with pytest.raises(CodecError):
        decode(frame)


def test_random_garbage_never_raises_anything_but_codec_error() -> None:
    rng = np.random.default_rng(1)
    good = encode({"obs": np.ones((4, 4), np.float32), "k": [1, "a"]})
    for _ in range(2000):
        frame = bytearray(good)
        for i in rng.integers(0, len(frame), size=3):
            frame[i] = int(rng.integers(0, 256))
        try:
            decode(bytes(frame[: int(rng.integers(0, len(frame) + 1))]))
        except CodecError:
            pass
