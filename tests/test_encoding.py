"""Canonical msgpack encoding (core/encoding.py): one byte form per value, strict decoding."""

import collections
import enum
import math
import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core import encoding
from ostracon.core.encoding import MAX_DEPTH, decode, encode
from ostracon.core.errors import CorruptBlockError, ValidationError

# ----------------------------------------------------------------------------- strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers(min_value=-(2**300), max_value=2**300)   # beyond 64 bits: ext type 1
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()                                              # hypothesis never makes lone surrogates
    | st.binary(max_size=64)
)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


def same(a, b) -> bool:
    """Equality that also distinguishes 1 / 1.0 / True and 0.0 / -0.0 (tuples read back as lists)."""
    if isinstance(a, tuple):
        a = list(a)
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if type(a) is dict:
        return list(sorted(a)) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


# ----------------------------------------------------------------------------- round trip

@settings(max_examples=150, deadline=None)
@given(json_like)
def test_round_trip(value):
    data = encode(value)
    back = decode(data)
    assert same(value, back)
    assert encode(back) == data  # decode(encode(x)) is a fixed point


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), st.integers(), min_size=2, max_size=10), st.randoms(use_true_random=False))
def test_map_keys_sorted_by_code_point_whatever_the_insertion_order(d, rnd):
    keys = list(d)
    rnd.shuffle(keys)
    shuffled = {k: d[k] for k in keys}
    assert encode(shuffled) == encode(d)
    raw = msgpack.unpackb(encode(d), raw=True)
    # code point order == UTF-8 byte order for valid strings
    assert list(raw) == sorted(k.encode() for k in d)
    assert list(raw) == [k.encode() for k in sorted(d)]


def test_tuples_encode_as_arrays_and_bytearray_as_bin():
    assert encode((1, 2)) == encode([1, 2])
    assert encode(bytearray(b"ab")) == encode(b"ab") == b"\xc4\x02ab"
    assert encode(memoryview(b"ab")) == b"\xc4\x02ab"


@pytest.mark.parametrize("n", [2**64, 2**64 + 1, -(2**63) - 1, 2**100, -(2**100), -(2**71), -(2**127), 2**127 - 1,
                               -(2**64), 10**40, -(10**40)])
def test_big_ints_use_ext_1_with_minimal_twos_complement(n):
    data = encode(n)
    ext = msgpack.unpackb(data, ext_hook=lambda code, payload: (code, payload))
    code, payload = ext
    assert code == 1
    # independent minimal length: smallest k with -2^(8k-1) <= n < 2^(8k-1)
    k = 1
    while not -(2 ** (8 * k - 1)) <= n < 2 ** (8 * k - 1):
        k += 1
    assert payload == n.to_bytes(k, "big", signed=True)
    assert decode(data) == n


@pytest.mark.parametrize("n", [0, 1, -1, 127, 128, -32, -33, 255, 256, 2**63 - 1, -(2**63), 2**63, 2**64 - 1])
def test_64_bit_ints_use_native_forms(n):
    assert encode(n) == msgpack.packb(n)
    assert decode(encode(n)) == n


def test_floats_are_always_float64():
    assert encode(1.5) == b"\xcb" + struct.pack(">d", 1.5)
    assert encode(-0.0) == b"\xcb" + struct.pack(">d", -0.0)
    assert math.copysign(1, decode(encode(-0.0))) == -1
    assert encode(1.0) != encode(1)


def test_unicode_round_trip():
    for s in ["", "héllo", "日本語", "👩‍💻", "\x00", "\U0010ffff", "a" * 70000]:
        assert decode(encode({s: s})) == {s: s}


def test_depth_limit():
    v = 0
    for _ in range(MAX_DEPTH):
        v = [v]
    assert decode(encode(v)) == v                        # MAX_DEPTH nested containers are fine
    with pytest.raises(ValidationError):
        encode([v])                                      # one more is refused
    with pytest.raises(ValidationError):
        encode({"a": v})
    # decode refuses what encode refuses (hand-built msgpack)
    with pytest.raises(CorruptBlockError):
        decode(msgpack.packb([v]))
    # and very deep input never turns into RecursionError
    deep = b"\x91" * 100_000 + b"\x00"
    with pytest.raises(CorruptBlockError):
        decode(deep)


# ----------------------------------------------------------------------------- refused values

class Custom:
    pass


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize("value", [
    float("nan"), float("inf"), float("-inf"), [1, float("nan")], {"a": {"b": float("inf")}},
    {1, 2}, frozenset(), Custom(), object(), Color.RED, collections.OrderedDict(a=1),
    {1: "a"}, {1: "a", "b": 2}, {(1, 2): "x"}, {b"k": 1}, {None: 1},
    "\ud800", ["ok", "\udfff"], {"\udc00": 1}, {"a": "x\ud834y"},
    complex(1, 2), range(3), print,
], ids=repr)
def test_non_encodable_values_raise_validation_error(value):
    with pytest.raises(ValidationError):
        encode(value)


# ----------------------------------------------------------------------------- strict decoding

NON_CANONICAL = {
    "unsorted keys": msgpack.packb({"b": 1, "a": 2}),
    "unsorted nested keys": msgpack.packb([{"z": 1, "y": 2}]),
    "float32": b"\xca" + struct.pack(">f", 1.5),
    "float32 nested": b"\x91\xca" + struct.pack(">f", 1.5),
    "uint8 for 5": b"\xcc\x05",
    "uint16 for 200": b"\xcd\x00\xc8",
    "int8 for 1": b"\xd0\x01",
    "int16 for -1": b"\xd1\xff\xff",
    "int64 for 0": b"\xd3" + bytes(8),
    "uint64 for 1": b"\xcf" + (1).to_bytes(8, "big"),
    "str8 for short": b"\xd9\x01a",
    "bin16 for short": b"\xc5\x00\x01a",
    "array16 for 1 item": b"\xdc\x00\x01\x01",
    "map16 for 1 entry": b"\xde\x00\x01\xa1a\x01",
    "duplicate keys": b"\x82\xa1a\x01\xa1a\x02",
    "trailing bytes": msgpack.packb(1) + b"\x00",
    "trailing garbage": msgpack.packb({"a": 1}) + b"\xc1",
    "ext for small int": msgpack.packb(msgpack.ExtType(1, (5).to_bytes(9, "big", signed=True))),
    "ext for 2**63 (fits uint64)": msgpack.packb(msgpack.ExtType(1, (2**63).to_bytes(9, "big", signed=True))),
    "ext for -2**63 (fits int64)": msgpack.packb(msgpack.ExtType(1, (-(2**63)).to_bytes(9, "big", signed=True))),
    "ext big int padded": msgpack.packb(msgpack.ExtType(1, (2**64).to_bytes(12, "big", signed=True))),
    "ext big int not minimal negative": msgpack.packb(msgpack.ExtType(1, (-(2**71)).to_bytes(10, "big", signed=True))),
    "ext empty": msgpack.packb(msgpack.ExtType(1, b"")),
    "unknown ext": msgpack.packb(msgpack.ExtType(2, b"\x01")),
    "timestamp ext -1": b"\xd6\xff\x00\x00\x00\x00",
    "timestamp nested": b"\x91\xd6\xff\x00\x00\x00\x00",
    "nan": msgpack.packb(float("nan")),
    "nan nested in list": msgpack.packb([float("nan")]),
    "inf nested in map": msgpack.packb({"a": float("inf")}),
    "-inf deep": msgpack.packb({"a": [[{"b": float("-inf")}]]}),
    "int map key": msgpack.packb({1: 2}),
    "bin map key": msgpack.packb({b"a": 2}, use_bin_type=True),
    "invalid utf-8": b"\xa2\xff\xfe",
    "surrogate in utf-8": b"\xa3\xed\xa0\x80",
    "str as raw bin-less": b"\xc1",
    "empty": b"",
    "truncated array": b"\x92\x01",
    "truncated str": b"\xa5ab",
}


@pytest.mark.parametrize("name", sorted(NON_CANONICAL))
def test_decode_refuses_non_canonical_bytes(name):
    with pytest.raises(CorruptBlockError):
        decode(NON_CANONICAL[name])


@pytest.mark.parametrize("value", [None, 1, "x", [1], bytearray(b"\x01")[0]])
def test_decode_needs_bytes(value):
    with pytest.raises(CorruptBlockError):
        decode(value)


def test_decode_accepts_bytearray_and_memoryview():
    data = encode({"a": [1, 2]})
    assert decode(bytearray(data)) == {"a": [1, 2]}
    assert decode(memoryview(data)) == {"a": [1, 2]}


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_decode_random_bytes_only_raises_corrupt_block(data):
    try:
        value = decode(data)
    except CorruptBlockError:
        return
    assert encode(value) == data  # anything accepted is canonical


@settings(max_examples=100, deadline=None)
@given(json_like, st.data())
def test_decode_truncations_and_bit_flips(value, data):
    good = encode(value)
    cut = data.draw(st.integers(0, max(0, len(good) - 1)))
    for bad in (good[:cut], bytearray(good)):
        if isinstance(bad, bytearray):
            bit = data.draw(st.integers(0, len(good) * 8 - 1))
            bad[bit // 8] ^= 1 << (bit % 8)
            bad = bytes(bad)
        try:
            v = decode(bad)
        except CorruptBlockError:
            continue
        assert encode(v) == bad


def test_encode_canonical_refuses_lone_surrogates_with_validation_error():
    with pytest.raises(ValidationError):
        encoding.encode_canonical({"a": "\ud800"})
