"""Lossless JSON for stored values (ostracon.tagged_json): the mapping of each value type,
tags that user data cannot forge, and the exact round trip through real JSON text."""

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core.encoding import encode
from ostracon.core.errors import ValidationError
from ostracon.tagged_json import decode_base64, from_json_value, to_json_value

stored_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(max_size=64)
)
# Keys drawn so that `$`-prefixed ones (and the tag names themselves) are common.
keys = st.one_of(st.text(max_size=6), st.sampled_from(["$bytes", "$map", "$", "$x"]),
                 st.text(max_size=5).map(lambda s: "$" + s))
stored_values = st.recursive(
    stored_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)


def through_json_text(v):
    return from_json_value(json.loads(json.dumps(to_json_value(v), ensure_ascii=False)))


@settings(max_examples=300, deadline=None)
@given(stored_values)
def test_round_trip_through_json_text_is_exact(v):
    back = through_json_text(v)
    # The canonical encoding tells 1, 1.0, True and -0.0 / 0.0 apart, which == does not.
    assert encode(back) == encode(v)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    (True, True),
    ("é\u2028", "é\u2028"),
    (2**100, 2**100),
    (-0.0, -0.0),
    (b"", {"$bytes": ""}),
    (b"\x00\xff", {"$bytes": "AP8="}),
    ([b"\x01", [1.5]], [{"$bytes": "AQ=="}, [1.5]]),
    ({"a": b"\x01"}, {"a": {"$bytes": "AQ=="}}),
    ({"$bytes": "AQ=="}, {"$map": {"$bytes": "AQ=="}}),
    ({"a": 1, "$x": {"$map": 2}}, {"$map": {"a": 1, "$x": {"$map": {"$map": 2}}}}),
    ({"a$": 1}, {"a$": 1}),            # only a leading `$` needs the wrapper
])
def test_each_type_maps_as_documented(value, expected):
    out = to_json_value(value)
    assert out == expected
    assert json.dumps(out) == json.dumps(expected)     # also 1.0 vs 1 and key order
    assert encode(from_json_value(out)) == encode(value)


def test_float_and_int_forms_survive_json_text():
    assert json.dumps(to_json_value([1.0, -0.0, 1, 2**64])) == "[1.0, -0.0, 1, 18446744073709551616]"
    assert [type(x) for x in through_json_text([1.0, 1, True])] == [float, int, bool]


def test_only_one_key_objects_are_tags():
    assert from_json_value({"$bytes": "AQ==", "b": 1}) == {"$bytes": "AQ==", "b": 1}
    assert from_json_value({"$bytes": 1}) == {"$bytes": 1}
    assert from_json_value({"$map": [1]}) == {"$map": [1]}
    # Inside a $map wrapper the keys are data, never tags.
    assert from_json_value({"$map": {"$bytes": {"$bytes": "AQ=="}}}) == {"$bytes": b"\x01"}


@pytest.mark.parametrize("bad", ["A", "AQ=", "A@==", "AQ==\n", "AQ==AQ==", "é"])
def test_a_bytes_tag_must_be_strict_base64(bad):
    with pytest.raises(ValidationError, match="not valid base64"):
        from_json_value({"$bytes": bad})
    assert issubclass(ValidationError, ValueError)   # what `ostracon import` catches


@given(st.binary(max_size=80))
def test_decode_base64_inverts_standard_base64(data):
    assert decode_base64(base64.b64encode(data).decode("ascii"), "x") == data


@pytest.mark.parametrize("bad", [None, 1, b"AQ==", ["AQ=="]])
def test_decode_base64_takes_only_text_and_names_the_field(bad):
    with pytest.raises(ValidationError, match=r"^block must be base64 text$"):
        decode_base64(bad, "block")


def test_decode_base64_names_the_field_of_bad_text():
    with pytest.raises(ValidationError, match=r"^seal is not valid base64$"):
        decode_base64("A@==", "seal")


def test_the_input_is_not_changed():
    v = {"$a": [b"\x01", {"b": b"\x02"}]}
    to_json_value(v)
    assert v == {"$a": [b"\x01", {"b": b"\x02"}]}
