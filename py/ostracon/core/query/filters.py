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

from collections.abc import Callable, Iterable
from typing import Any

from ..encoding import MAX_DEPTH
from ..errors import IndexBuildingError, OstraconError, QueryCursorError, QueryTooExpensiveError, ValidationError  # noqa: F401  (re-exported)
from ..lexical import ascii_fold
from .fields import (
    COMPARE_OPS,
    FIELD_ALIASES,
    FIELD_OPS,
    LIKE_OPS,
    LOGICAL_OPS,
    MAX_PATH_DEPTH,
    METADATA_FIELDS,
    dollar_error,
    make_getter,
    parse_path,
    show_path,
)
from .keys import (
    RANK_BOOL,
    RANK_BYTES,
    RANK_NUM,
    RANK_STR,
    value_key,
)
from .like import like_matcher, like_prefix
from .ordering import (
    check_page_args,
    decode_cursor,
    is_after,
    normalize_order,
    page,
    sort_docs,
    sort_key_fn,
)

__all__ = [
    "QueryTooExpensiveError", "IndexBuildingError", "QueryCursorError", "Cmp", "And", "Or", "Not", "Const", "Node",
    "CompiledFilter", "compile_filter", "select", "run_query", "like_matcher", "like_prefix",
]


# Limits (named, documented): a filter is user input (GraphQL), so bound its size and depth
# to keep compile time and recursion predictable.
MAX_FILTER_DEPTH = 32      # nesting of objects/_and/_or/_not; deeper than any sane query
MAX_FILTER_NODES = 10_000  # total conditions; a 10k-element _in still fits


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
            raise ValidationError(f"{show_path(path)}: filter has more than {MAX_FILTER_NODES} conditions")


_PLAIN = (str, int, float, bool, bytes, type(None))


def _nested_deeper_than(v: Any, limit: int) -> bool:
    """Whether lists/maps in `v` nest more than `limit` levels (walked without recursion, so
    a hostile operand cannot exhaust the stack before it is refused)."""
    stack = [(v, 0)]
    while stack:
        x, depth = stack.pop()
        items = x if type(x) is list or type(x) is tuple else x.values() if type(x) is dict else None
        if items is None:
            continue
        if depth >= limit:
            return True
        stack.extend((y, depth + 1) for y in items)
    return False


def _check_operand_json(v: Any, path: tuple, op: str | None, index: int | None = None) -> None:
    t = type(v)
    if t in _PLAIN and not (t is float and v != v):
        return
    try:
        if _nested_deeper_than(v, MAX_DEPTH):  # deeper than any stored value can be
            raise ValidationError(f"value nested deeper than {MAX_DEPTH} levels")
        value_key(v)
    except ValidationError as e:
        where = show_path(path) + (f".{op}" if op else "") + (f"[{index}]" if index is not None else "")
        raise ValidationError(f"{where}: {e}") from None


def _parse_obj(obj: dict, path: tuple[str, ...], depth: int, budget: _Budget) -> Node:
    # Error messages are built only when raising: parsing is on every query's hot path.
    if depth > MAX_FILTER_DEPTH:
        raise ValidationError(f"{show_path(path)}: filter nested deeper than {MAX_FILTER_DEPTH}")
    if not isinstance(obj, dict):
        raise ValidationError(f"{show_path(path)}: expected an object, got {type(obj).__name__}")
    items: list = []
    for key, val in obj.items():
        budget.take(path)
        if type(key) is not str:
            raise ValidationError(f"{show_path(path)}: keys must be strings, got {key!r}")
        if key[:1] == "$":
            raise dollar_error(key, path)
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
            if path or (key not in METADATA_FIELDS and key not in FIELD_ALIASES):
                where = show_path(path)
                if key in METADATA_FIELDS or key in FIELD_ALIASES:
                    raise ValidationError(f"{where}.{key}: metadata fields exist only at the top level")
                known = sorted(FIELD_OPS | LOGICAL_OPS)
                raise ValidationError(
                    f"{where}: unknown operator or reserved field {key!r} (operators: {', '.join(known)})")
        if path and path[0] in METADATA_FIELDS:
            raise ValidationError(f"{show_path(path)}: metadata field {path[0]} has no sub-fields")
        if "." not in key and key[:1] != "_" and key:
            sub = path + (key,)
        else:
            sub = path + parse_path(key, show_path(path), root=not path)
        if len(sub) > MAX_PATH_DEPTH:
            raise ValidationError(f"{show_path(path)}: path deeper than {MAX_PATH_DEPTH}")
        if isinstance(val, dict):
            items.append(_parse_obj(val, sub, depth + 1, budget))
        else:
            _check_operand_json(val, sub, None)
            items.append(Cmp(sub, "_eq", _norm_value(val)))
    return _and(items)


def _parse_logical(key: str, val: Any, path: tuple[str, ...], depth: int, budget: _Budget) -> Node:
    where = f"{show_path(path)}.{key}"
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
            raise ValidationError(f"{show_path(path)}.{op}: expects a list, got {type(val).__name__}")
        for i, x in enumerate(val):
            _check_operand_json(x, path, op, i)
        return Cmp(path, op, tuple(_norm_value(x) for x in val))
    if op in COMPARE_OPS:
        if val is None or isinstance(val, (list, tuple, dict)) or not isinstance(
                val, (bool, int, float, str, bytes)):
            raise ValidationError(
                f"{show_path(path)}.{op}: expects a number, string, bytes or boolean, got "
                f"{'null' if val is None else type(val).__name__}")
        _check_operand_json(val, path, op)
        return Cmp(path, op, val)
    if not isinstance(val, str):
        raise ValidationError(f"{show_path(path)}.{op}: expects a string pattern, got {type(val).__name__}")
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
    fm = like_matcher(x, ignore_case=fold)

    if fold:
        def like(d: dict) -> bool:
            v = g(d)
            return type(v) is str and fm(ascii_fold(v))
    else:
        def like(d: dict) -> bool:
            v = g(d)
            return type(v) is str and fm(v)
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
