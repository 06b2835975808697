"""Canonical msgpack encoding of JSON-like values.

One value has exactly one byte form, in both runtimes, so that content IDs are stable:
maps have `str` keys sorted by code point, ints use msgpack's shortest form, floats are
always float64, `bytes` are bin, ints outside [-2**63, 2**64) are ext type 1 carrying the
two's-complement big-endian minimal byte string. NaN and ±Infinity are refused (they have
no JSON form and NaN != NaN breaks equality of states). `decode` refuses bytes that are not
the canonical form of what they decode to.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

from .errors import CorruptBlockError, ValidationError

BIGINT_EXT = 1
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

#: Largest integer magnitude a value may hold: two's complement in at most 1024 bits, i.e.
#: -2**1023 <= n < 2**1023 (309 decimal digits). One limit, enforced where values enter
#: (writes: ValidationError; decoding blocks from peers or disk: CorruptBlockError), so every
#: stored int prints (Python refuses int->str beyond 4300 digits), converts to a float where a
#: query or counter needs one without OverflowError, and exports as JSON.
MAX_INT_BITS = 1024
BIGINT_MIN = -(2 ** (MAX_INT_BITS - 1))
BIGINT_MAX = 2 ** (MAX_INT_BITS - 1) - 1

#: Nesting deeper than this is refused: recursion in both runtimes is bounded (Pyodide's
#: stack is much smaller than CPython's), and no real document nests 64 levels deep.
MAX_DEPTH = 64


def _bigint_to_ext(n: int) -> msgpack.ExtType:
    # Minimal two's complement: a negative n needs as many bits as ~n (= -n-1) plus the sign
    # bit. (Using n.bit_length() for negatives gave one byte too many for -2**(8k-1).)
    length = ((n if n >= 0 else ~n).bit_length() + 8) // 8  # room for the sign bit
    return msgpack.ExtType(BIGINT_EXT, n.to_bytes(length, "big", signed=True))


def _default(obj: Any) -> Any:
    if type(obj) is int:
        return _bigint_to_ext(obj)
    raise ValidationError(f"cannot encode value of type {type(obj).__name__}")


def canonical(value: Any, _depth: int = 0) -> Any:
    """Validate a JSON-like value and return it with every map's keys sorted.

    Raises ValidationError for anything that has no canonical encoding.
    """
    t = type(value)
    if t is str or t is bool or value is None or t is bytes:
        return value
    if t is int:
        if not BIGINT_MIN <= value <= BIGINT_MAX:
            raise ValidationError(f"integers are limited to {MAX_INT_BITS} bits (|n| < 2**{MAX_INT_BITS - 1})")
        return value
    if t is float:
        if math.isnan(value) or math.isinf(value):
            raise ValidationError("NaN and Infinity cannot be stored")
        return value
    if _depth >= MAX_DEPTH:
        raise ValidationError(f"value nested deeper than {MAX_DEPTH} levels")
    if t is dict:
        out = {}
        # Check key types before sorting: sorting mixed key types raised TypeError.
        for k in value:
            if type(k) is not str:
                raise ValidationError(f"map keys must be str, not {type(k).__name__}")
        for k in sorted(value):
            out[k] = canonical(value[k], _depth + 1)
        return out
    if t is list or t is tuple:
        return [canonical(v, _depth + 1) for v in value]
    if t is bytearray or t is memoryview:
        return bytes(value)
    # Subclasses (e.g. IntEnum, OrderedDict) are refused rather than guessed at.
    raise ValidationError(f"cannot store a value of type {t.__name__}")


_packer_opts: dict[str, Any] = dict(use_bin_type=True, default=_default)


def encode(value: Any) -> bytes:
    """Canonical bytes of a JSON-like value (validates and sorts)."""
    return encode_canonical(canonical(value))


def encode_canonical(value: Any) -> bytes:
    """Bytes of a value already produced by `canonical` (skips the validation walk)."""
    try:
        return msgpack.packb(value, **_packer_opts)
    except UnicodeEncodeError:
        raise ValidationError("strings must be valid Unicode (no lone surrogates)") from None


def _ext_hook(code: int, data: bytes) -> Any:
    if code != BIGINT_EXT or not data:
        raise CorruptBlockError(f"unknown msgpack ext type {code}")
    if len(data) > MAX_INT_BITS // 8:
        raise CorruptBlockError(f"integer beyond the {MAX_INT_BITS}-bit limit")
    n = int.from_bytes(data, "big", signed=True)
    if INT_MIN <= n <= INT_MAX or data != _bigint_to_ext(n).data:
        raise CorruptBlockError("non-canonical big integer")
    return n


#: Leaf types a decoded value may contain (msgpack can also produce Timestamp for ext -1).
_LEAF_TYPES = (str, int, bool, type(None), bytes)


def _check_leaf(v: Any) -> None:
    # Every leaf is checked, not only the top level: NaN/Infinity can hide nested in a list or
    # map, and msgpack's Timestamp (ext type -1) bypasses ext_hook.
    t = type(v)
    if t in _LEAF_TYPES:
        return
    if t is float:
        if math.isnan(v) or math.isinf(v):
            raise CorruptBlockError("NaN/Infinity in encoded value")
        return
    raise CorruptBlockError(f"value of type {t.__name__} is not JSON-like")


def check_sorted(value: Any, depth: int = 0) -> None:
    """Raise CorruptBlockError unless every map in `value` has str keys in sorted order
    (and every leaf is a JSON-like value, nesting no deeper than `canonical` allows)."""
    # `>=` as in `canonical`: decode must not accept what encode refuses.
    if depth >= MAX_DEPTH and (type(value) is dict or type(value) is list):
        raise CorruptBlockError("value nested too deeply")
    t = type(value)
    if t is dict:
        prev = None
        for k, v in value.items():
            if type(k) is not str:
                raise CorruptBlockError("map keys must be str")
            if prev is not None and k <= prev:
                raise CorruptBlockError("map keys not in canonical order")
            prev = k
            if type(v) is dict or type(v) is list:
                check_sorted(v, depth + 1)
            else:
                _check_leaf(v)
    elif t is list:
        for v in value:
            if type(v) is dict or type(v) is list:
                check_sorted(v, depth + 1)
            else:
                _check_leaf(v)
    else:
        _check_leaf(value)


def decode(data: bytes) -> Any:
    """Decode canonical bytes; anything else raises CorruptBlockError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CorruptBlockError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        value = msgpack.unpackb(
            data, raw=False, strict_map_key=False, ext_hook=_ext_hook, use_list=True,
            max_bin_len=len(data), max_str_len=len(data),
        )
    except CorruptBlockError:
        raise
    except Exception as exc:  # msgpack raises a zoo of types (ExtraData, ValueError, ...)
        raise CorruptBlockError(f"not valid msgpack: {exc.__class__.__name__}") from None
    check_sorted(value)
    try:
        again = msgpack.packb(value, **_packer_opts)
    except Exception:
        raise CorruptBlockError("value cannot be re-encoded") from None
    if again != data:
        raise CorruptBlockError("bytes are not in canonical form")
    return value
