import numpy as np
import pytest

from robot_rl.core import ArraySpec, DictSpec, SpecError


def test_array_spec_accepts_matching_array_and_casts_same_kind():
    spec = ArraySpec((3,), "float32", -1.0, 1.0)
    out = spec.validate(np.array([0.1, -0.5, 1.0], dtype=np.float64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.1, -0.5, 1.0], rtol=1e-6)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros(4, np.float32), r"expected shape \(3,\), got \(4,\)"),
        (np.zeros((3, 1), np.float32), r"expected shape \(3,\), got \(3, 1\)"),
        (np.array([1, 2, 3], dtype=np.complex64), "expected dtype float32, got complex64"),
        (np.array([0.0, np.nan, 0.0]), "NaN or infinity"),
        (np.array([0.0, 2.0, 0.0]), "above the upper bound 1.0"),
        (np.array([-3.0, 0.0, 0.0]), "below the lower bound -1.0"),
    ],
)
def test_array_spec_rejects_with_a_message_naming_the_problem(value, message):
    with pytest.raises(SpecError, match=message):
        ArraySpec((3,), "float32", -1.0, 1.0).validate(value, "action")


def test_array_spec_rejects_object_dtype_and_reversed_bounds():
    with pytest.raises(SpecError, match="object dtypes"):
        ArraySpec((1,), "object")
    with pytest.raises(SpecError, match="reversed"):
        ArraySpec((1,), "float32", 1.0, -1.0)
    with pytest.raises(SpecError, match="unknown dtype"):
        ArraySpec((1,), "notatype")


def test_image_spec_rejects_float_images():
    spec = ArraySpec((4, 4, 3), "uint8")
    with pytest.raises(SpecError, match="expected dtype uint8, got float64"):
        spec.validate(np.zeros((4, 4, 3)))
    assert spec.nbytes == 48


def test_dict_spec_names_missing_and_unexpected_keys():
    spec = DictSpec({"a": ArraySpec((2,), "float32"), "b": ArraySpec((), "int64")})
    with pytest.raises(SpecError, match=r"missing keys \['b'\], unexpected keys \['c'\]"):
        spec.validate({"a": np.zeros(2, np.float32), "c": 1})
    with pytest.raises(SpecError, match=r"observation\['a'\]: expected shape"):
        spec.validate({"a": np.zeros(3, np.float32), "b": 1})
    with pytest.raises(SpecError, match="expected a mapping"):
        spec.validate([1, 2])


def test_dict_spec_json_round_trip_equality_and_digest():
    spec = DictSpec({"img": ArraySpec((8, 8, 3), "uint8", 0, 255), "q": ArraySpec((5,), "float32")})
    again = DictSpec.from_json(spec.to_json())
    assert again == spec
    assert again.digest() == spec.digest()
    other = DictSpec({"q": ArraySpec((6,), "float32")})
    assert other.digest() != spec.digest()
    assert list(spec) == ["img", "q"]
    zeros = spec.zeros()
    assert zeros["img"].dtype == np.uint8 and zeros["q"].shape == (5,)
