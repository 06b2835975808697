"""Declarative lenses (core/query/lenses.py): each step's rule, exact conversions only,
type-strict mapping tables, and a canonical form every replica reads back identically."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ostracon import ValidationError
from ostracon.core.encoding import encode
from ostracon.core.query.lenses import (
    EXACT_FLOAT_INT,
    MAX_LENS_STEPS,
    DeclaredLens,
    lens_bytes,
    lens_from_bytes,
)


def test_rename_copy_default_drop():
    lens = DeclaredLens([
        {"op": "rename", "from": "text", "to": "body"},
        {"op": "copy", "from": "body", "to": "summary"},
        {"op": "default", "field": "model", "value": {"name": "none"}},
        {"op": "drop", "field": "legacy"},
    ])
    doc = {"text": "hi", "legacy": 1, "tags": ["a"]}
    out = lens(doc)
    assert out == {"body": "hi", "summary": "hi", "model": {"name": "none"}, "tags": ["a"]}
    assert doc == {"text": "hi", "legacy": 1, "tags": ["a"]}          # the argument is untouched
    assert lens({"model": None})["model"] == {"name": "none"}          # null counts as absent
    assert lens({"model": "kept", "text": None}) == {"model": "kept", "body": None, "summary": None}


@pytest.mark.parametrize("to, value, want", [
    ("String", 12, "12"), ("String", -3, "-3"), ("String", True, "true"), ("String", False, "false"),
    ("String", 1.5, 1.5),                                  # float text is not defined the same everywhere
    ("Int", "42", 42), ("Int", "-7", -7), ("Int", "007", "007"), ("Int", 3.0, 3),
    ("Int", "١٢", "١٢"), ("Int", "12a", "12a"), ("Int", "", ""), ("Int", "-", "-"), ("Int", " 1", " 1"),
    ("Int", "1" * 20, "1" * 20), ("Int", 2.5, 2.5), ("Int", float(2 ** 60), float(2 ** 60)),
    ("Float", 3, 3.0), ("Float", EXACT_FLOAT_INT + 1, EXACT_FLOAT_INT + 1),
    ("Boolean", "true", True), ("Boolean", "false", False), ("Boolean", "True", "True"), ("Boolean", 1, 1),
])
def test_convert_to_a_type_is_exact_or_leaves_the_value(to, value, want):
    out = DeclaredLens([{"op": "convert", "field": "f", "to": to}])({"f": value})
    assert out["f"] == want and type(out["f"]) is type(want)


def test_convert_with_a_table_compares_type_and_value():
    lens = DeclaredLens([{"op": "convert", "field": "f", "map": [[1, "one"], [True, "yes"], [[1], "list"]]}])
    assert lens({"f": 1})["f"] == "one"
    assert lens({"f": True})["f"] == "yes"
    assert lens({"f": 1.0})["f"] == 1.0
    assert lens({"f": [1]})["f"] == "list"
    assert lens({"f": [True]})["f"] == [True]
    assert lens({"g": 1}) == {"g": 1}


@pytest.mark.parametrize("steps", [
    [], "rename", [{"op": "rename", "from": "a"}], [{"op": "rename", "from": "a", "to": "a"}],
    [{"op": "rename", "from": "a", "to": "b", "extra": 1}], [{"op": "eval", "field": "x"}],
    [{"op": "drop", "field": "a.b"}], [{"op": "drop", "field": "_id"}], [{"op": "drop", "field": ""}],
    [{"op": "default", "field": "x", "value": float("nan")}],
    [{"op": "convert", "field": "n", "to": "Date"}], [{"op": "convert", "field": "n"}],
    [{"op": "convert", "field": "n", "to": "Int", "map": []}], [{"op": "convert", "field": "n", "map": [[1]]}],
    [{"op": "drop", "field": "x"}] * (MAX_LENS_STEPS + 1),
])
def test_malformed_lenses_are_refused(steps):
    with pytest.raises(ValidationError):
        DeclaredLens(steps)


def test_stored_bytes_must_be_the_canonical_form():
    steps = [{"op": "rename", "to": "b", "from": "a"}]
    data = lens_bytes(steps)
    assert lens_from_bytes(data).to_list() == [{"op": "rename", "from": "a", "to": "b"}]
    unsorted = msgpack.packb([{"op": "rename", "to": "b", "from": "a"}])
    for bad in (unsorted, b"\xc1", encode([{"op": "nope"}]), "text", b""):
        with pytest.raises(ValidationError):
            lens_from_bytes(bad)


names = st.sampled_from(["a", "b", "c", "title", "body"])
values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63) | st.text(max_size=5)
                      | st.floats(allow_nan=False, allow_infinity=False),
                      lambda kids: st.lists(kids, max_size=3) | st.dictionaries(names, kids, max_size=3),
                      max_leaves=6)
steps = st.one_of(
    st.builds(lambda a, b: {"op": "rename", "from": a, "to": b}, names, names),
    st.builds(lambda a, b: {"op": "copy", "from": a, "to": b}, names, names),
    st.builds(lambda a, v: {"op": "default", "field": a, "value": v}, names, values),
    st.builds(lambda a: {"op": "drop", "field": a}, names),
    st.builds(lambda a, t: {"op": "convert", "field": a, "to": t}, names,
              st.sampled_from(["String", "Int", "Float", "Boolean"])),
    st.builds(lambda a, m: {"op": "convert", "field": a, "map": m}, names,
              st.lists(st.tuples(values, values).map(list), max_size=4)),
).filter(lambda s: s.get("from") != s.get("to") or "from" not in s)


@given(st.lists(steps, min_size=1, max_size=6), st.dictionaries(names, values, max_size=5))
def test_a_lens_read_back_from_its_bytes_is_the_same_lens(lens_steps, doc):
    lens = DeclaredLens(lens_steps)
    again = lens_from_bytes(lens.data)
    assert again == lens and again.data == lens.data
    assert encode(again(doc)) == encode(lens(doc))
