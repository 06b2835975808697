"""Value keys: one total order across JSON-like values, as plain tuples compared in C. PURE.

Indexes, ordering and cursors all compare these keys, so the order never depends on Python
comparison quirks between types."""

from __future__ import annotations

from typing import Any

from ..encoding import BIGINT_MAX, BIGINT_MIN, MAX_INT_BITS
from ..errors import IndexBuildingError, OstraconError, QueryCursorError, QueryTooExpensiveError, ValidationError  # noqa: F401  (re-exported)

# --------------------------------------------------------------------------------------
# Value keys: one total order across JSON-like types, as plain tuples (compared in C).
# rank: 0 null/missing, 1 bool, 2 number, 3 str, 4 bytes, 5 list, 6 map; 7 = above all.

NULL_KEY: tuple = (0,)
TOP: tuple = (7,)
RANK_BOOL, RANK_NUM, RANK_STR, RANK_BYTES, RANK_LIST, RANK_MAP = 1, 2, 3, 4, 5, 6


def value_key(v: Any) -> tuple:
    """Sort/index key of a JSON-like value. Raises ValidationError for anything else."""
    t = type(v)
    if t is str:
        return (3, v)
    if t is int:
        if not BIGINT_MIN <= v <= BIGINT_MAX:  # the engine's one huge-int limit (encoding.py)
            raise ValidationError(f"integers are limited to {MAX_INT_BITS} bits")
        return (2, v)
    if t is float:
        if v != v:
            raise ValidationError("NaN cannot be compared, ordered or indexed")
        return (2, v)
    if v is None:
        return NULL_KEY
    if t is bool:
        return (1, v)
    if t is bytes:
        return (4, v)
    if t is list or t is tuple:
        return (5, tuple([value_key(x) for x in v]))
    if t is dict:
        for k in v:
            if type(k) is not str:
                raise ValidationError(f"map keys must be strings, got {type(k).__name__}")
        # Keys are unique, so sorting pairs never compares two values.
        return (6, tuple(sorted([(k, value_key(x)) for k, x in v.items()])))
    # Subclasses (IntEnum, str subclasses, bytearray...) are normalised, never trusted.
    if isinstance(v, bool):
        return (1, bool(v))
    if isinstance(v, int):
        return value_key(int(v))
    if isinstance(v, float):
        return value_key(float(v))
    if isinstance(v, str):
        return (3, str(v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return (4, bytes(v))
    if isinstance(v, (list, tuple)):
        return (5, tuple([value_key(x) for x in v]))
    if isinstance(v, dict):
        return value_key(dict(v))
    raise ValidationError(f"{type(v).__name__} is not a JSON-like value")


def key_to_value(k: tuple) -> Any:
    """Inverse of value_key (used by explain and violation reports)."""
    r = k[0]
    if r == 0:
        return None
    if r == 5:
        return [key_to_value(x) for x in k[1]]
    if r == 6:
        return {name: key_to_value(x) for name, x in k[1]}
    return k[1]


def is_value_key(k: Any, depth: int = 0) -> bool:
    """Is `k` a well-formed value key? (cursors come from outside and must not crash sorts)."""
    if type(k) is not tuple or not k or depth > 64:
        return False
    r = k[0]
    if type(r) is not int:
        return False
    if r == 0:
        return len(k) == 1
    if len(k) != 2:
        return False
    v = k[1]
    if r == 1:
        return type(v) is bool
    if r == 2:
        return (type(v) is int) or (type(v) is float and v == v)
    if r == 3:
        return type(v) is str
    if r == 4:
        return type(v) is bytes
    if r == 5:
        return type(v) is tuple and all(is_value_key(x, depth + 1) for x in v)
    if r == 6:
        return (type(v) is tuple and all(
            type(p) is tuple and len(p) == 2 and type(p[0]) is str and is_value_key(p[1], depth + 1)
            for p in v))
    return False
