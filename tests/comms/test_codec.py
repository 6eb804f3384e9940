"""The wire codec: exact round trips of whitelisted values, clear refusals of everything else."""

from __future__ import annotations

import datetime
import io
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


def test_decoded_arrays_are_aligned_read_only_views_of_the_frame() -> None:
    image = np.arange(128 * 128 * 3, dtype=np.uint8).reshape(128, 128, 3)
    frame = encode({"wrist": image, "state": np.ones(70, np.float64), "flag": np.bool_(True)})
    out = decode(frame)
    start = np.frombuffer(frame, np.uint8).ctypes.data
    for arr in (out["wrist"], out["state"]):
        assert not arr.flags.writeable
        assert start <= arr.ctypes.data < start + len(frame)  # inside the frame: no copy
        assert arr.ctypes.data % 16 == 0
    np.testing.assert_array_equal(out["wrist"], image)


def test_a_frame_is_a_plain_msgpack_stream_any_decoder_can_read() -> None:
    big, small = np.arange(1000, dtype=np.int32), np.arange(3, dtype=np.int32)
    region, value = list(msgpack.Unpacker(io.BytesIO(encode({"a": big, "b": small, "n": 1}))))
    assert region.code == 2 and big.tobytes() in region.data
    assert value["n"] == 1 and value["a"].code == 3
    assert value["b"].code == 1 and value["b"].data.endswith(small.tobytes())  # small: inline
    assert encode({"n": 1}) == msgpack.packb({"n": 1})  # no arrays: nothing but msgpack
    assert msgpack.Unpacker(io.BytesIO(encode(small))).unpack().code == 1  # no region


def test_frames_of_protocol_1_with_every_array_inline_still_decode() -> None:
    image = np.arange(128 * 128 * 3, dtype=np.uint8).reshape(128, 128, 3)
    record = b"u1 \x03" + b"".join(n.to_bytes(8, "little") for n in image.shape) + image.tobytes()
    out = decode(msgpack.packb({"obs": msgpack.ExtType(1, record), "k": 2}))
    np.testing.assert_array_equal(out["obs"], image)  # e.g. a spool written before the region


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


def _frame(record: bytes, region: bytes = bytes(64), announced: int | None = None) -> bytes:
    """A frame holding one array record over `region` (whose length it may misstate)."""
    size = len(region) if announced is None else announced
    return (b"\xc9" + size.to_bytes(4, "big") + b"\x02" + region
            + msgpack.packb(msgpack.ExtType(3, record)))


def _record(code: bytes, ndim: int, offset: int, *shape: int) -> bytes:
    return code + bytes([ndim]) + offset.to_bytes(8, "little") + b"".join(
        n.to_bytes(8, "little") for n in shape)


@pytest.mark.parametrize("frame, why", [
    (b"", "malformed"), (b"\xc1", "malformed"), (pickle.dumps({"a": 1}), "malformed"),
    (b"\xd4\x07\x00", "extension type 7"),
    (msgpack.packb(msgpack.ExtType(3, _record(b"u1 ", 1, 0, 8))), "does not fit"),  # no region
    (msgpack.packb(msgpack.ExtType(1, b"u1 \x01" + (4).to_bytes(8, "little") + b"abc")),
     "does not fit"),  # an inline array missing a byte
    (msgpack.packb(msgpack.ExtType(1, b"u1 \x01" + (2).to_bytes(8, "little") + b"abc")),
     "does not fit"),  # ... or with one too many
    (_frame(b"f4 "), "shorter than its header"),
    (_frame(_record(b"f4 ", 1, 0, 10)[:-8]), "has 12 bytes"),  # shape cut off
    (_frame(_record(b"O  ", 1, 0, 1)), "not allowed"),  # object dtype
    (_frame(_record(b"u1 ", 64, 0)), "64 dimensions"),
    (_frame(_record(b"f4 ", 1, 0, 17)), "does not fit"),  # 68 bytes from 64
    (_frame(_record(b"u1 ", 1, 60, 8)), "does not fit"),  # runs past the end
    (_frame(_record(b"u1 ", 2, 0, 2**40, 2**40)), "does not fit"),  # absurd shape
    (_frame(_record(b"u1 ", 1, 0, 8), announced=1000), "announces 1000 bytes"),
])
def test_malformed_frames_raise_codec_error_only(frame: bytes, why: str) -> None:
    with pytest.raises(CodecError, match=why):
        decode(frame)


def test_random_garbage_never_raises_anything_but_codec_error() -> None:
    rng = np.random.default_rng(1)
    good = encode({"obs": np.ones((4, 4), np.float32), "k": [1, "a"], "s": np.arange(3)})
    for _ in range(2000):
        frame = bytearray(good)
        for i in rng.integers(0, len(frame), size=3):
            frame[i] = int(rng.integers(0, 256))
        try:
            decode(bytes(frame[: int(rng.integers(0, len(frame) + 1))]))
        except CodecError:
            pass
