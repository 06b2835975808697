"""Ordering, cursors and pages of query results. PURE.

`order` accepts DefraDB object style, a list of such objects, or field names with a `-` prefix
for descending; `_id` ascending is always the final tie-break, so every order is total. A
cursor is an opaque, versioned msgpack of the last row's sort key, bound to the order it was made for."""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from typing import Any

import msgpack

from ..errors import IndexBuildingError, OstraconError, QueryCursorError, QueryTooExpensiveError, ValidationError  # noqa: F401  (re-exported)
from ..lexical import ascii_fold
from .fields import METADATA_FIELDS, make_getter, parse_path
from .keys import is_value_key, value_key

MAX_CURSOR_CHARS = 16_384  # an encoded cursor; sort keys of a few fields fit easily
#: Entries of one order (repeats included): each costs a sort-key part per document, and
#: orders arrive from REST and GraphQL callers; real orders name a handful of fields.
MAX_ORDER_FIELDS = 64
# --------------------------------------------------------------------------------------
# Order

OrderSpec = tuple  # tuple[tuple[tuple[str, ...], bool], ...]: (path, descending)
_ID_ASC = (("_id",), False)


def _direction(v: Any, where: str) -> bool:
    if isinstance(v, str) and ascii_fold(v) in ("asc", "desc"):
        return ascii_fold(v) == "desc"
    raise ValidationError(f"{where}: direction must be ASC or DESC, got {v!r}")


#: The order when none is given; the planner tests identity against it to skip sorting.
DEFAULT_ORDER_SPEC = (_ID_ASC,)


def normalize_order(order: Any) -> OrderSpec:
    """Normalise every accepted order form to ((path, desc), ...) ending with _id."""
    out: list = []
    if order is None:
        return DEFAULT_ORDER_SPEC
    elif isinstance(order, (str, dict)):
        items = [order]
    elif isinstance(order, (list, tuple)):
        items = list(order)
    else:
        raise ValidationError(f"order: expected a list, object or string, got {type(order).__name__}")

    def add(path: tuple[str, ...], desc: bool) -> None:
        if len(out) >= MAX_ORDER_FIELDS:
            raise ValidationError(f"order: at most {MAX_ORDER_FIELDS} entries")
        out.append((path, desc))

    if len(items) > MAX_ORDER_FIELDS:
        raise ValidationError(f"order: at most {MAX_ORDER_FIELDS} entries")

    def walk(obj: dict, prefix: tuple[str, ...], where: str) -> None:
        if not obj:
            raise ValidationError(f"{where}: empty order object")
        for k, v in obj.items():
            path = prefix + parse_path(k, where, root=not prefix)
            if isinstance(v, dict):
                if path[0] in METADATA_FIELDS:
                    raise ValidationError(f"{where}.{k}: metadata fields have no sub-fields")
                walk(v, path, f"{where}.{k}")
            else:
                add(path, _direction(v, f"{where}.{k}"))

    for i, it in enumerate(items):
        where = f"order[{i}]"
        if isinstance(it, str):
            desc = it.startswith("-")
            name = it[1:] if it[:1] in "+-" else it
            add(parse_path(name, where, root=True), desc)
        elif isinstance(it, dict):
            walk(it, (), where)
        else:
            raise ValidationError(f"{where}: expected an object or string, got {type(it).__name__}")
    spec: list = []
    seen: set = set()
    for path, desc in out:
        if path in seen:
            continue
        seen.add(path)
        spec.append((path, desc))
        if path == ("_id",):
            break  # _id is unique: anything after it can never matter
    if ("_id",) not in seen:
        spec.append(_ID_ASC)
    return tuple(spec)


def sort_key_fn(spec: OrderSpec) -> Callable[[dict], tuple]:
    getters = [make_getter(p) for p, _ in spec]
    if len(getters) == 1:
        g = getters[0]
        return lambda d: (value_key(g(d)),)
    if len(getters) == 2:
        g0, g1 = getters
        return lambda d: (value_key(g0(d)), value_key(g1(d)))
    return lambda d: tuple([value_key(g(d)) for g in getters])


def sort_docs(docs: list, spec: OrderSpec) -> list:
    """Sort in place by `spec` (stable multi-pass for mixed directions) and return docs."""
    kf = sort_key_fn(spec)
    if not any(desc for _, desc in spec):
        docs.sort(key=kf)
        return docs
    keyed = [(kf(d), d) for d in docs]
    for i in range(len(spec) - 1, -1, -1):
        keyed.sort(key=_sort_part(i), reverse=spec[i][1])
    docs[:] = [d for _, d in keyed]
    return docs


def _sort_part(i: int) -> Callable[[tuple[tuple, dict]], Any]:
    return lambda kd: kd[0][i]


def is_after(key: tuple, cursor: tuple, spec: OrderSpec) -> bool:
    """Does a document with sort key `key` come strictly after `cursor` in `spec`'s order?"""
    for a, b, (_, desc) in zip(key, cursor, spec, strict=False):
        if a == b:
            continue
        return (a < b) if desc else (a > b)
    return False


# --- cursors ---------------------------------------------------------------------------

#: The order tag is a digest of the spec's canonical bytes, never of `repr()` (which differs
#: between runtimes for characters their Unicode databases class differently as printable).
_CURSOR_VERSION = 2
_BIGINT_EXT = 1  # same ext type number as the canonical encoding uses for big ints


@functools.lru_cache(maxsize=256)
def _spec_tag(spec: OrderSpec) -> bytes:
    # UTF-8 with surrogatepass: a path is user input and may hold a lone surrogate.
    canon = msgpack.packb([[[p.encode("utf-8", "surrogatepass") for p in path], bool(desc)]
                           for path, desc in spec], use_bin_type=True)
    return hashlib.sha256(canon).digest()[:6]


def _pack_big(obj: Any) -> Any:
    if type(obj) is tuple:
        return [_pack_big(x) for x in obj]
    if type(obj) is int and not (-(1 << 63) <= obj < (1 << 64)):
        n = (obj.bit_length() + 8) // 8
        return msgpack.ExtType(_BIGINT_EXT, obj.to_bytes(n, "big", signed=True))
    return obj


def _ext_hook(code: int, data: bytes) -> int:
    if code != _BIGINT_EXT:
        raise ValueError("unknown ext type")
    return int.from_bytes(data, "big", signed=True)


def encode_cursor(key: tuple, spec: OrderSpec) -> str:
    """Opaque cursor = base64url(msgpack([version, spec tag, sort key])) of the last row."""
    raw = msgpack.packb([_CURSOR_VERSION, _spec_tag(spec), _pack_big(key)], use_bin_type=True)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, spec: OrderSpec) -> tuple:
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise QueryCursorError("after: malformed cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj = msgpack.unpackb(raw, use_list=False, raw=False, ext_hook=_ext_hook,
                              strict_map_key=True)
    except Exception:  # msgpack/base64 errors must not leak: a cursor is user input
        raise QueryCursorError("after: malformed cursor") from None
    if (type(obj) is not tuple or len(obj) != 3 or obj[0] != _CURSOR_VERSION
            or type(obj[2]) is not tuple):
        raise QueryCursorError("after: malformed cursor")
    if obj[1] != _spec_tag(spec):
        raise QueryCursorError("after: this cursor was made for a different order")
    key = obj[2]
    if len(key) != len(spec) or not all(is_value_key(k) for k in key):
        raise QueryCursorError("after: malformed cursor")
    if key[-1][0] != 3 or spec[-1][0] != ("_id",):
        raise QueryCursorError("after: malformed cursor")
    return key


def check_page_args(limit: Any, offset: Any) -> tuple[int | None, int]:
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ValidationError(f"limit: expected a non-negative integer, got {limit!r}")
    if offset is None:
        offset = 0
    if type(offset) is not int or offset < 0:
        raise ValidationError(f"offset: expected a non-negative integer, got {offset!r}")
    return limit, offset


def page(ordered: list, spec: OrderSpec, limit: int | None, offset: int) -> tuple[list, str | None]:
    """Cut a page from docs already in order (and after the cursor); make the next cursor.

    `ordered` may hold one extra document beyond offset+limit: that is how we know whether a
    next page exists without a second query.
    """
    if limit is None:
        return ordered[offset:], None
    rows = ordered[offset:offset + limit]
    if limit and len(ordered) > offset + limit:
        return rows, encode_cursor(sort_key_fn(spec)(rows[-1]), spec)
    return rows, None
