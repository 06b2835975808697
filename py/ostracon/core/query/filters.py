"""The query language: DefraDB-style filters, multi-field ordering, offset and cursor pages.

Pure: documents in, documents out. The planner (`planner.py`) decides *which* documents to
look at (an index range, id lookups or a bounded scan); this module decides whether one
document matches and in which order matching documents come.

Filter language (as DefraDB)::

    {"title": {"_eq": "a"}, "votes": {"_gt": 3}}                 # implicit AND of the keys
    {"_or": [{"done": {"_eq": True}}, {"votes": {"_ge": 10}}]}
    {"_not": {"tags": {"_eq": []}}}
    {"author": {"name": {"_like": "Ann%"}}}                        # nested field path
    {"author.name": {"_ilike": "ann%"}}                            # dotted path, same thing
    {"title": "a"}                                                 # shorthand for _eq (non-dict values)
    {"_id": {"_in": ["…", "…"]}}                                   # metadata fields at the top level

Operators: `_eq _ne _gt _ge _lt _le _in _nin _like _nlike _ilike _nilike _and _or _not`.
`_and/_or/_not` may also appear inside a field, where they combine conditions on that field:
`{"votes": {"_or": [{"_lt": 0}, {"_gt": 100}]}}`.

Null and missing semantics (documented choice):
- A missing field and a field holding `null` are the same thing for queries (so are paths whose
  intermediate value is missing or not a map).
- `_eq: null` matches missing/null; `_ne: null` matches any present non-null value.
- `_ne`, `_nin`, `_nlike`, `_nilike` and `_not` are the exact negations of `_eq`, `_in`,
  `_like`, `_ilike` and the wrapped filter. So `{"title": {"_ne": "a"}}` matches documents
  without a title (unlike SQL's three-valued logic; like DefraDB/MongoDB).
- `_gt _ge _lt _le` compare only within one type class (numbers with numbers, strings with
  strings, bytes with bytes, booleans with booleans); against null/missing or another type
  they are false. Their operand must be a number, string, bytes or boolean.
- Numbers compare numerically across int and float (`_eq: 1` matches `1.0`); booleans are
  never numbers (`_eq: 1` does not match `true`).
- `_eq` on a list or map compares the whole value (no element matching).
- `_like` is SQL LIKE: `%` = any run of characters, `_` = one character, `\\` escapes the next
  character; it matches the whole string. `_ilike` ignores the case of ASCII letters (A-Z
  = a-z); other characters compare exactly, the same in every runtime (core/lexical.py).
  Non-strings never match.

Ordering: `order` accepts DefraDB's object style `{"title": "ASC"}`, a list of such objects
`[{"title": "ASC"}, {"votes": "DESC"}]`, nested objects `{"author": {"name": "DESC"}}`, or
strings `["title", "-votes", "author.name"]`. Across types one total order holds:
null/missing < booleans < numbers < strings < bytes < lists < maps; numbers compare
numerically, strings by code point, bytes bytewise, lists and maps element-wise. Every order
ends with `_id` ascending as tie-breaker (unless `_id` is already in it), so pages are stable.

Pagination: `offset`, `limit`, and `after`: an opaque cursor holding the sort key of the last
document of the previous page (including its `_id`). The next page starts strictly after that
key, so inserts and deletes between pages never repeat or skip a document whose sort key did
not change (keyset pagination). A cursor only fits the order it was made with.

Dotted keys are paths: a field whose own name contains a dot can only be reached through the
nested-object form, and not at all if every level is dotted; the engine may forbid dots in
field names to remove the ambiguity.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from ..encoding import BIGINT_MAX, BIGINT_MIN, MAX_INT_BITS
from ..errors import IndexBuildingError, OstraconError, QueryCursorError, QueryTooExpensiveError, ValidationError  # noqa: F401  (re-exported)
from ..lexical import ascii_fold

__all__ = [
    "METADATA_FIELDS", "QueryTooExpensiveError", "IndexBuildingError", "QueryCursorError",
    "value_key", "key_to_value", "NULL_KEY", "TOP", "get_path", "make_getter", "parse_path",
    "Cmp", "And", "Or", "Not", "Const", "Node", "CompiledFilter", "compile_filter",
    "normalize_order", "OrderSpec", "sort_key_fn", "sort_docs", "is_after",
    "encode_cursor", "decode_cursor", "select", "run_query", "like_to_regex", "like_prefix",
]

# Metadata the engine adds to every document; the only `_` names a filter or order may use.
METADATA_FIELDS = frozenset({"_id", "_collection", "_version", "_created", "_updated", "_deleted",
                             "_heads"})
# DefraDB spells the document id `_docID`; accept it so DefraDB queries port unchanged.
_ALIASES = {"_docID": "_id"}

COMPARE_OPS = frozenset({"_gt", "_ge", "_lt", "_le"})
LIKE_OPS = frozenset({"_like", "_nlike", "_ilike", "_nilike"})
FIELD_OPS = frozenset({"_eq", "_ne", "_in", "_nin"}) | COMPARE_OPS | LIKE_OPS
LOGICAL_OPS = frozenset({"_and", "_or", "_not"})

# Limits (named, documented): a filter is user input (GraphQL), so bound its size and depth
# to keep compile time and recursion predictable.
MAX_FILTER_DEPTH = 32      # nesting of objects/_and/_or/_not; deeper than any sane query
MAX_FILTER_NODES = 10_000  # total conditions; a 10k-element _in still fits
MAX_PATH_DEPTH = 16        # nested field path length
MAX_CURSOR_CHARS = 16_384  # an encoded cursor; sort keys of a few fields fit easily


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


def _check_key(k: Any, depth: int = 0) -> bool:
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
        return type(v) is tuple and all(_check_key(x, depth + 1) for x in v)
    if r == 6:
        return (type(v) is tuple and all(
            type(p) is tuple and len(p) == 2 and type(p[0]) is str and _check_key(p[1], depth + 1)
            for p in v))
    return False


# --------------------------------------------------------------------------------------
# Paths

def _dollar(key: str, path: tuple) -> ValidationError:
    """A `$` name is a MongoDB-style operator: refused, never read as a field name (a filter
    `{"done": {"$eq": true}}` would otherwise quietly look for a field called `$eq`)."""
    hint = f"_{key[1:]}"
    known = FIELD_OPS | LOGICAL_OPS
    tip = f"; the operator here is {hint}" if hint in known else ""
    where = _show(path) if path else "filter"
    return ValidationError(f"{where}: {key!r}: '$' operators are MongoDB syntax, not Ostracon's{tip}")


def parse_path(name: str, where: str, *, root: bool) -> tuple[str, ...]:
    """Split a (possibly dotted) field name into a path and validate each part."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{where}: field names must be non-empty strings")
    if root and name in _ALIASES:
        return (_ALIASES[name],)
    if root and name in METADATA_FIELDS:
        return (name,)
    parts = tuple(name.split("."))
    for p in parts:
        if not p:
            raise ValidationError(f"{where}: empty path segment in {name!r}")
        if p[0] == "$":
            raise _dollar(p, ())
        if p.startswith("_"):
            raise ValidationError(
                f"{where}.{name}: names beginning with '_' are reserved "
                f"(only the metadata fields {sorted(METADATA_FIELDS)} at the top level)")
    if len(parts) > MAX_PATH_DEPTH:
        raise ValidationError(f"{where}: path {name!r} is deeper than {MAX_PATH_DEPTH}")
    return parts


def get_path(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`, or None when missing (missing and null are the same to queries)."""
    v = doc
    for p in path:
        if type(v) is not dict:
            return None
        v = v.get(p)
    return v


def make_getter(path: tuple[str, ...]) -> Callable[[dict], Any]:
    if len(path) == 1:
        f = path[0]
        return lambda d: d.get(f)
    if len(path) == 2:
        a, b = path

        def g2(d: dict) -> Any:
            v = d.get(a)
            return v.get(b) if type(v) is dict else None
        return g2
    return lambda d: get_path(d, path)


# --------------------------------------------------------------------------------------
# Filter AST (the planner reads it; `_pred` turns it into closures)

class _Node:
    """AST nodes: plain slotted classes (a frozen dataclass costs ~1 µs more per node on
    every query). Treat them as immutable."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Node) and type(other) is type(self) and other._fields() == self._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._fields()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._fields()!r}"


class Cmp(_Node):
    """`path op value`; op is one of FIELD_OPS; value is a tuple for _in/_nin."""

    __slots__ = ("path", "op", "value")

    def __init__(self, path: tuple[str, ...], op: str, value: Any):
        self.path = path
        self.op = op
        self.value = value


class And(_Node):
    __slots__ = ("items",)

    def __init__(self, items: tuple):
        self.items = items


class Or(_Node):
    __slots__ = ("items",)

    def __init__(self, items: tuple):
        self.items = items


class Not(_Node):
    __slots__ = ("item",)

    def __init__(self, item: Any):
        self.item = item


class Const(_Node):
    __slots__ = ("value",)

    def __init__(self, value: bool):
        self.value = value


Node = Cmp | And | Or | Not | Const
TRUE = Const(True)


def _and(items: list) -> Node:
    flat: list = []
    for it in items:
        if isinstance(it, And):
            flat.extend(it.items)
        elif type(it) is Const and it.value:
            continue
        else:
            flat.append(it)
    if not flat:
        return TRUE
    if len(flat) == 1:
        return flat[0]
    return And(tuple(flat))


class _Budget:
    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes = 0

    def take(self, path: tuple) -> None:
        self.nodes += 1
        if self.nodes > MAX_FILTER_NODES:
            raise ValidationError(f"{_show(path)}: filter has more than {MAX_FILTER_NODES} conditions")


def _show(path: tuple[str, ...]) -> str:
    return "filter" + "".join("." + p for p in path)


_PLAIN = (str, int, float, bool, bytes, type(None))


def _check_operand_json(v: Any, path: tuple, op: str | None, index: int | None = None) -> None:
    t = type(v)
    if t in _PLAIN and not (t is float and v != v):
        return
    try:
        value_key(v)
    except ValidationError as e:
        where = _show(path) + (f".{op}" if op else "") + (f"[{index}]" if index is not None else "")
        raise ValidationError(f"{where}: {e}") from None


def _parse_obj(obj: dict, path: tuple[str, ...], depth: int, budget: _Budget) -> Node:
    # Error messages are built only when raising: parsing is on every query's hot path.
    if depth > MAX_FILTER_DEPTH:
        raise ValidationError(f"{_show(path)}: filter nested deeper than {MAX_FILTER_DEPTH}")
    if not isinstance(obj, dict):
        raise ValidationError(f"{_show(path)}: expected an object, got {type(obj).__name__}")
    items: list = []
    for key, val in obj.items():
        budget.take(path)
        if type(key) is not str:
            raise ValidationError(f"{_show(path)}: keys must be strings, got {key!r}")
        if key[:1] == "$":
            raise _dollar(key, path)
        if key[:1] == "_":
            if key in FIELD_OPS:
                if not path:
                    raise ValidationError(
                        f"filter: operator {key} needs a field, e.g. {{\"title\": {{\"{key}\": …}}}}")
                items.append(_parse_op(key, val, path))
                continue
            if key in LOGICAL_OPS:
                items.append(_parse_logical(key, val, path, depth, budget))
                continue
            if path or (key not in METADATA_FIELDS and key not in _ALIASES):
                where = _show(path)
                if key in METADATA_FIELDS or key in _ALIASES:
                    raise ValidationError(f"{where}.{key}: metadata fields exist only at the top level")
                known = sorted(FIELD_OPS | LOGICAL_OPS)
                raise ValidationError(
                    f"{where}: unknown operator or reserved field {key!r} (operators: {', '.join(known)})")
        if path and path[0] in METADATA_FIELDS:
            raise ValidationError(f"{_show(path)}: metadata field {path[0]} has no sub-fields")
        if "." not in key and key[:1] != "_" and key:
            sub = path + (key,)
        else:
            sub = path + parse_path(key, _show(path), root=not path)
        if len(sub) > MAX_PATH_DEPTH:
            raise ValidationError(f"{_show(path)}: path deeper than {MAX_PATH_DEPTH}")
        if isinstance(val, dict):
            items.append(_parse_obj(val, sub, depth + 1, budget))
        else:
            _check_operand_json(val, sub, None)
            items.append(Cmp(sub, "_eq", _norm_value(val)))
    return _and(items)


def _parse_logical(key: str, val: Any, path: tuple[str, ...], depth: int, budget: _Budget) -> Node:
    where = f"{_show(path)}.{key}"
    if key == "_not":
        if not isinstance(val, dict):
            raise ValidationError(f"{where}: expects an object, got {type(val).__name__}")
        inner = _parse_obj(val, path, depth + 1, budget)
        return Not(inner)
    if not isinstance(val, (list, tuple)):
        raise ValidationError(f"{where}: expects a list of objects, got {type(val).__name__}")
    subs = []
    for i, item in enumerate(val):
        if not isinstance(item, dict):
            raise ValidationError(f"{where}[{i}]: expects an object, got {type(item).__name__}")
        subs.append(_parse_obj(item, path, depth + 1, budget))
    if key == "_and":
        return _and(subs)
    # _or of nothing is false (the identity of OR), like an empty _in.
    if not subs:
        return Const(False)
    if len(subs) == 1:
        return subs[0]
    return Or(tuple(subs))


def _norm_value(v: Any) -> Any:
    """Operands normalised to plain types (tuples → lists) so equality is by value_key."""
    if isinstance(v, tuple):
        return [_norm_value(x) for x in v]
    return v


def _parse_op(op: str, val: Any, path: tuple[str, ...]) -> Node:
    if op == "_eq" or op == "_ne":
        _check_operand_json(val, path, op)
        return Cmp(path, op, _norm_value(val))
    if op == "_in" or op == "_nin":
        if not isinstance(val, (list, tuple)):
            raise ValidationError(f"{_show(path)}.{op}: expects a list, got {type(val).__name__}")
        for i, x in enumerate(val):
            _check_operand_json(x, path, op, i)
        return Cmp(path, op, tuple(_norm_value(x) for x in val))
    if op in COMPARE_OPS:
        if val is None or isinstance(val, (list, tuple, dict)) or not isinstance(
                val, (bool, int, float, str, bytes)):
            raise ValidationError(
                f"{_show(path)}.{op}: expects a number, string, bytes or boolean, got "
                f"{'null' if val is None else type(val).__name__}")
        _check_operand_json(val, path, op)
        return Cmp(path, op, val)
    if not isinstance(val, str):
        raise ValidationError(f"{_show(path)}.{op}: expects a string pattern, got {type(val).__name__}")
    return Cmp(path, op, val)


_SCALAR_TYPES = (str, int, bytes, bool, type(None))


def _fast_parse(flt: dict) -> Node | None:
    """The common shape `{"field": {"_op": scalar, …}, …}` without the general recursion
    (it is on every query's path). Returns None to fall back to the full parser, which
    also produces every error message."""
    items: list[Node] = []
    for key, cond in flt.items():
        if (type(key) is not str or not key or key[0] == "_" or "." in key
                or type(cond) is not dict or not cond or len(cond) + len(items) > 64):
            return None
        path = (key,)
        for op, v in cond.items():
            t = type(v)
            if op in _SIMPLE_OPS and (t in _SCALAR_TYPES or (t is float and v == v)):
                if op in LIKE_OPS and t is not str:
                    return None
                if op in COMPARE_OPS and v is None:
                    return None
                items.append(Cmp(path, op, v))
            else:
                return None
    if not items:
        return None
    return items[0] if len(items) == 1 else And(tuple(items))


_SIMPLE_OPS = frozenset({"_eq", "_ne"}) | COMPARE_OPS | LIKE_OPS


def parse_filter(flt: Any) -> Node:
    """Validate a filter and return its AST (And/Or/Not/Cmp/Const)."""
    if flt is None:
        return TRUE
    if type(flt) is dict:
        node = _fast_parse(flt)
        if node is not None:
            return node
    if not isinstance(flt, dict):
        raise ValidationError(f"filter: expected an object, got {type(flt).__name__}")
    return _parse_obj(flt, (), 0, _Budget())


# --- LIKE ------------------------------------------------------------------------------

def like_to_regex(pattern: str, *, ignore_case: bool = False) -> re.Pattern:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
        i += 1
    # Case-insensitive matching folds ASCII letters only (core/lexical.py): the caller folds
    # the value with `ascii_fold`, and the pattern is folded here, so no Unicode table of
    # the interpreter takes part.
    rx = "".join(out)
    return re.compile(ascii_fold(rx) if ignore_case else rx, re.DOTALL)


def like_prefix(pattern: str) -> tuple[str, bool, bool]:
    """(literal prefix, has wildcard, pattern is exactly `prefix%…%`) of a LIKE pattern."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in "%_":
            rest = pattern[i:]
            return "".join(out), True, rest.strip("%") == ""
        out.append(c)
        i += 1
    return "".join(out), False, False


# --- predicates ------------------------------------------------------------------------

def _cmp_pred(node: Cmp) -> Callable[[dict], bool]:
    g = make_getter(node.path)
    op, x = node.op, node.value
    if op == "_eq" or op == "_ne":
        p = _eq_pred(g, x)
        if op == "_ne":
            return lambda d: not p(d)
        return p
    if op == "_in" or op == "_nin":
        p = _in_pred(g, x)
        if op == "_nin":
            return lambda d: not p(d)
        return p
    if op in COMPARE_OPS:
        return _compare_pred(g, op, x)
    fold = op in ("_ilike", "_nilike")
    rx = like_to_regex(x, ignore_case=fold)
    fm = rx.fullmatch

    if fold:
        def like(d: dict) -> bool:
            v = g(d)
            return type(v) is str and fm(ascii_fold(v)) is not None
    else:
        def like(d: dict) -> bool:
            v = g(d)
            return type(v) is str and fm(v) is not None
    if op in ("_nlike", "_nilike"):
        return lambda d: not like(d)
    return like


def _eq_pred(g: Callable[[dict], Any], x: Any) -> Callable[[dict], bool]:
    if x is None:
        return lambda d: g(d) is None
    t = type(x)
    if t is str or t is bytes:
        return lambda d: g(d) == x   # a str/bytes equals only a str/bytes
    if t is bool:
        return lambda d: g(d) is x
    if t is int or t is float:
        def num_eq(d: dict) -> bool:
            v = g(d)
            return v == x and type(v) is not bool
        return num_eq
    k = value_key(x)
    if k[0] == RANK_BOOL:
        b = k[1]
        return lambda d: g(d) is b
    if k[0] in (RANK_NUM, RANK_STR, RANK_BYTES):
        return _eq_pred(g, k[1])

    def deep_eq(d: dict) -> bool:
        v = g(d)
        if not isinstance(v, (list, dict)):
            return False
        try:
            return value_key(v) == k
        except ValidationError:
            return False
    return deep_eq


def _in_pred(g: Callable[[dict], Any], values: tuple) -> Callable[[dict], bool]:
    if all(type(v) is str for v in values):
        s = frozenset(values)

        def in_str(d: dict) -> bool:
            v = g(d)
            return type(v) is str and v in s   # lists/maps are unhashable: test type first
        return in_str
    keys = frozenset(value_key(v) for v in values)

    def in_(d: dict) -> bool:
        try:
            return value_key(g(d)) in keys
        except ValidationError:
            return False
    return in_


def _compare_pred(g: Callable[[dict], Any], op: str, x: Any) -> Callable[[dict], bool]:
    if type(x) is bool:
        def ok(v: Any) -> bool: return type(v) is bool
    elif isinstance(x, (int, float)):
        def ok(v: Any) -> bool: return (type(v) is int or type(v) is float)
    elif isinstance(x, str):
        def ok(v: Any) -> bool: return type(v) is str
    else:
        def ok(v: Any) -> bool: return type(v) is bytes
    if op == "_gt":
        def p(d: dict) -> bool:
            v = g(d)
            return ok(v) and v > x
    elif op == "_ge":
        def p(d: dict) -> bool:
            v = g(d)
            return ok(v) and v >= x
    elif op == "_lt":
        def p(d: dict) -> bool:
            v = g(d)
            return ok(v) and v < x
    else:
        def p(d: dict) -> bool:
            v = g(d)
            return ok(v) and v <= x
    return p


def node_pred(node: Node) -> Callable[[dict], bool]:
    if isinstance(node, Cmp):
        return _cmp_pred(node)
    if isinstance(node, Const):
        c = node.value
        return lambda d: c
    if isinstance(node, Not):
        p = node_pred(node.item)
        return lambda d: not p(d)
    preds = [node_pred(i) for i in node.items]
    if isinstance(node, And):
        if len(preds) == 2:
            a, b = preds
            return lambda d: a(d) and b(d)
        return lambda d: all(p(d) for p in preds)
    if len(preds) == 2:
        a, b = preds
        return lambda d: a(d) or b(d)
    return lambda d: any(p(d) for p in preds)


class CompiledFilter:
    """A validated filter: call it on a document (`f(doc) -> bool`); `.node` is its AST."""

    __slots__ = ("node", "_match")

    def __init__(self, node: Node):
        self.node = node
        self._match: Callable[[dict], bool] | None = None

    @property
    def match(self) -> Callable[[dict], bool]:
        # Built on first use: an index plan often answers the whole filter without it.
        m = self._match
        if m is None:
            m = self._match = node_pred(self.node)
        return m

    def __call__(self, doc: dict) -> bool:
        return self.match(doc)

    @property
    def is_true(self) -> bool:
        return self.node is TRUE


def compile_filter(flt: Any) -> CompiledFilter:
    """Validate `flt` (ValidationError naming the path) and compile it to a predicate."""
    if isinstance(flt, CompiledFilter):
        return flt
    return CompiledFilter(parse_filter(flt))


# --------------------------------------------------------------------------------------
# Order

OrderSpec = tuple  # tuple[tuple[tuple[str, ...], bool], ...]: (path, descending)
_ID_ASC = (("_id",), False)


def _direction(v: Any, where: str) -> bool:
    if isinstance(v, str) and ascii_fold(v) in ("asc", "desc"):
        return ascii_fold(v) == "desc"
    raise ValidationError(f"{where}: direction must be ASC or DESC, got {v!r}")


_DEFAULT_SPEC = (_ID_ASC,)


def normalize_order(order: Any) -> OrderSpec:
    """Normalise every accepted order form to ((path, desc), ...) ending with _id."""
    out: list = []
    if order is None:
        return _DEFAULT_SPEC
    elif isinstance(order, (str, dict)):
        items = [order]
    elif isinstance(order, (list, tuple)):
        items = list(order)
    else:
        raise ValidationError(f"order: expected a list, object or string, got {type(order).__name__}")

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
                out.append((path, _direction(v, f"{where}.{k}")))

    for i, it in enumerate(items):
        where = f"order[{i}]"
        if isinstance(it, str):
            desc = it.startswith("-")
            name = it[1:] if it[:1] in "+-" else it
            out.append((parse_path(name, where, root=True), desc))
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
    if len(key) != len(spec) or not all(_check_key(k) for k in key):
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


def select(docs: Iterable[dict], flt: Any = None, order: Any = None, *, limit: int | None = None,
           offset: int = 0, after: str | None = None) -> tuple[list, str | None]:
    """The naive query: filter, order and page an iterable of documents (the reference the
    planner's index paths must agree with). Returns (page, next_cursor)."""
    f = compile_filter(flt)
    spec = normalize_order(order)
    limit, offset = check_page_args(limit, offset)
    m = f.match
    rows = [d for d in docs if not d.get("_deleted") and m(d)]
    if after is not None:
        ck = decode_cursor(after, spec)
        kf = sort_key_fn(spec)
        rows = [d for d in rows if is_after(kf(d), ck, spec)]
    sort_docs(rows, spec)
    return page(rows, spec, limit, offset)


def run_query(docs: Iterable[dict], flt: Any = None, order: Any = None, *,
              limit: int | None = None, offset: int = 0, after: str | None = None) -> list:
    """The naive query as a list (a reference implementation: tests compare the planner to it;
    planner.execute with the collection's indexes, which also returns the next cursor)."""
    return select(docs, flt, order, limit=limit, offset=offset, after=after)[0]
