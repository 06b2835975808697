"""The query planner and executor: index ranges, id lookups, or a bounded scan.

Paths, best first:
- "ids": the filter pins `_id` with `_eq`/`_in` (a conjunct at the top level): direct gets.
- "index": a ready index whose leading fields are pinned by `_eq` conjuncts, optionally
  followed by one field constrained by `_in`, a range (`_gt _ge _lt _le`, combined), or a
  `_like` with a literal prefix (`abc%`; a pattern without wildcards is an equality). The
  conditions an index answers exactly are dropped from the per-document check (the
  "residual"); everything else in the filter is checked on each candidate. A unique index
  with every field pinned by a non-null `_eq` is an O(1) key lookup (explain shows
  "lookup": "key"). When the order (all ascending) is exactly the remaining index fields,
  results come out of the index already sorted and a `limit` stops the walk early; an
  index can serve such an order even without any condition.
- "id_scan": no index applies, the order is just `_id`, a `limit` is given and the source
  can iterate by id: walk ids from the cursor, stop after offset+limit+1 matches; refused
  once it has examined more than `fallback_docs_max` documents.
- "scan": read every document. Refused with QueryTooExpensiveError when the collection holds
  more than `fallback_docs_max` documents *counting tombstones* (a scan must step over them).

Among index plans the one with the fewest estimated rows wins (estimates are exact counts
of the index ranges, cheap with the chunked list); ordered plans with a limit cost at most
offset+limit+1.

Queries during a rebuild (documented choice): building indexes are never used (they are
incomplete). If a ready index or a scan within `fallback_docs_max` can answer, the query
runs. Otherwise, if a building/dropped index would have served it, IndexBuildingError (a
QueryTooExpensiveError) is raised with the index name and progress, so a synchronous caller
gets a clear error and an async caller can wait for the rebuild (step the scheduler) and
retry. Results never depend on the path: every plan returns what `query.select` returns.

The document source contract (the database's Collection implements it):
    get(doc_id) -> visible doc or None (tombstoned/missing → None)
    iter_docs() -> every visible doc (any order)
    count_all() -> number of documents including tombstones (the cost of a scan)
    iter_by_id(after_id: str | None) -> visible docs with _id > after_id in _id order (optional)
"""

from __future__ import annotations

import functools
from bisect import insort
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .filters import (
    _DEFAULT_SPEC,
    TRUE,
    And,
    Cmp,
    CompiledFilter,
    IndexBuildingError,
    Node,
    QueryTooExpensiveError,
    check_page_args,
    compile_filter,
    decode_cursor,
    is_after,
    key_to_value,
    like_prefix,
    node_pred,
    normalize_order,
    page,
    sort_docs,
    sort_key_fn,
    value_key,
)
from .index import BUILDING, DROPPED, END, READY, CollectionIndexes, Index, flat

__all__ = ["DocSource", "DictSource", "Plan", "QueryResult", "plan_query", "execute", "explain",
           "QueryEngine", "FALLBACK_DOCS_MAX"]

# A scan of 10,000 documents costs ~5-10 ms in CPython (more in Pyodide); beyond that an
# unindexed query is almost always a missing index, so fail loudly instead of slowly.
FALLBACK_DOCS_MAX = 10_000


class DocSource(Protocol):
    def get(self, doc_id: str) -> dict | None: ...
    def iter_docs(self) -> Iterable[dict]: ...
    def count_all(self) -> int: ...


class DictSource:
    """A DocSource over a dict of visible documents (tests, benchmarks, small collections).

    `put`/`delete` keep tombstone counts and notify a listener with the engine's
    `(doc_id, old, new)` change shape, so it can drive a CollectionIndexes.
    """

    def __init__(self, docs: Iterable[dict] = (), *,
                 listener: Callable[[str, dict | None, dict | None], None] | None = None) -> None:
        self.docs: dict[str, dict] = {d["_id"]: d for d in docs}
        self.tombstones = 0
        self.listener = listener
        self._sorted: list[str] | None = None

    def get(self, doc_id: str) -> dict | None:
        return self.docs.get(doc_id)

    def iter_docs(self) -> Iterable[dict]:
        return self.docs.values()

    def count_all(self) -> int:
        return len(self.docs) + self.tombstones

    def iter_by_id(self, after_id: str | None = None) -> Iterator[dict]:
        from bisect import bisect_right
        if self._sorted is None:
            self._sorted = sorted(self.docs)
        ids = self._sorted
        i = 0 if after_id is None else bisect_right(ids, after_id)
        while i < len(ids):
            d = self.docs.get(ids[i])
            if d is not None:
                yield d
            i += 1

    def scan(self, after: str | None = None, limit: int = 500) -> tuple[list, str | None]:
        """Batches by id, shaped like Collection.scan (used as a rebuild `fetch`)."""
        out = []
        for d in self.iter_by_id(after):
            out.append(d)
            if len(out) >= limit:
                break
        nxt = out[-1]["_id"] if len(out) == limit else None
        return out, nxt

    def put(self, doc: dict) -> None:
        old = self.docs.get(doc["_id"])
        if old is None and self._sorted is not None:
            insort(self._sorted, doc["_id"])
        self.docs[doc["_id"]] = doc
        if self.listener:
            self.listener(doc["_id"], old, doc)

    def delete(self, doc_id: str) -> None:
        old = self.docs.pop(doc_id, None)
        if old is None:
            return
        self.tombstones += 1
        if self._sorted is not None:
            from bisect import bisect_left
            i = bisect_left(self._sorted, doc_id)
            if i < len(self._sorted) and self._sorted[i] == doc_id:
                del self._sorted[i]
        if self.listener:
            self.listener(doc_id, old, None)


class Plan:
    """A chosen access path (a slotted class: one is built per query)."""

    __slots__ = ("kind", "residual", "index", "ranges", "prefix", "ordered", "ids",
                 "estimated_rows", "cost", "used")

    def __init__(self, kind: str, residual: Node = TRUE, index: Index | None = None,
                 ranges: list | None = None, prefix: tuple = (), ordered: bool = False,
                 ids: tuple = (), estimated_rows: int | None = 0, cost: int = 0,
                 used: list | None = None) -> None:
        self.kind = kind                  # "ids" | "index" | "id_scan" | "scan"
        self.residual = residual          # what each candidate must still satisfy
        self.index = index
        self.ranges = ranges or []        # [(lo, hi)] flat entry bounds, ascending
        self.prefix = prefix              # flat key of the _eq-pinned leading fields
        self.ordered = ordered            # rows come out in the query's order
        self.ids = ids
        self.estimated_rows = estimated_rows  # None = not counted yet (see rows())
        self.cost = cost
        self.used = used or []            # the Cmp nodes the index answers exactly

    @property
    def idx(self) -> Index:
        """The index an index or point plan walks."""
        assert self.index is not None, f"a {self.kind} plan has no index"
        return self.index

    def rows(self) -> int:
        if self.estimated_rows is None:
            self.estimated_rows = self.idx.count_ranges(self.ranges)
        return self.estimated_rows

    def describe(self) -> dict:
        d: dict[str, Any] = {"path": self.kind, "estimated_rows": self.rows(),
                             "ordered": self.ordered, "residual_filter": self.residual != TRUE}
        if self.index is not None:
            d["path"] = "index"
            d["lookup"] = "key" if self.kind == "point" else "range"
            d["index"] = self.index.name
            d["fields"] = list(self.index.definition.fields)
            d["unique"] = self.index.unique
            d["ranges"] = len(self.ranges)
            d["conditions"] = [{"field": ".".join(c.path), "op": c.op, "value": _show_val(c)}
                               for c in self.used]
        if self.kind == "ids":
            d["ids"] = list(self.ids)
        return d


def _show_val(c: Cmp) -> Any:
    return list(c.value) if isinstance(c.value, tuple) else c.value


class QueryResult:
    """`docs` (the page), `next_cursor` (None = last page), `plan` (the explain dict)."""

    __slots__ = ("docs", "next_cursor", "_plan")

    def __init__(self, docs: list, next_cursor: str | None, plan: Plan):
        self.docs = docs
        self.next_cursor = next_cursor
        self._plan = plan

    @property
    def plan(self) -> dict:
        return self._plan.describe()  # built on demand: most callers never look

    def __repr__(self) -> str:
        return f"QueryResult(docs={self.docs!r}, next_cursor={self.next_cursor!r})"


def _conjuncts(node: Node) -> list:
    if node is TRUE:
        return []
    if isinstance(node, And):
        return list(node.items)
    return [node]


def _residual(conj: list, used: list) -> Node:
    if len(used) == len(conj):
        return TRUE  # `used` is always a subset of `conj`
    used_ids = {id(u) for u in used}
    rest = [c for c in conj if id(c) not in used_ids]
    if not rest:
        return TRUE
    if len(rest) == 1:
        return rest[0]
    return And(tuple(rest))


def _next_str(s: str) -> tuple:
    """Smallest flat bound above every string that starts with `s`."""
    while s and ord(s[-1]) == 0x10FFFF:
        s = s[:-1]
    if not s:
        return (4,)
    return (3, s[:-1] + chr(ord(s[-1]) + 1))


def _range_bounds(prefix: tuple, rank: int, lower: tuple | None, upper: tuple | None) -> tuple:
    """Flat bounds for a range on the field after `prefix`. lower/upper: (value key, incl)."""
    if lower is None:
        lo = prefix + (rank,)
    elif lower[1]:
        lo = prefix + flat(lower[0])
    else:
        lo = prefix + flat(lower[0]) + (END,)
    if upper is None:
        hi = prefix + (rank + 1,)
    elif upper[1]:
        hi = prefix + flat(upper[0]) + (END,)
    else:
        hi = prefix + flat(upper[0])
    return lo, hi


def _point(prefix: tuple, vkey: tuple) -> tuple:
    p = prefix + flat(vkey)
    return p, p + (END,)


class _Conds:
    """Sargable top-level conjuncts grouped by field path."""

    def __init__(self, conj: list):
        eq: dict = {}     # path -> (Cmp, value key)
        ins: dict = {}    # path -> (Cmp, sorted distinct value keys)
        rng: dict = {}    # path -> [Cmp]
        like: dict = {}   # path -> [Cmp]
        for c in conj:
            if type(c) is not Cmp:
                continue
            op = c.op
            if op == "_eq":
                if c.path not in eq:
                    eq[c.path] = (c, value_key(c.value))
            elif op == "_in":
                if c.path not in ins:
                    ins[c.path] = (c, sorted({value_key(v) for v in c.value}))
            elif op in ("_gt", "_ge", "_lt", "_le"):
                rng.setdefault(c.path, []).append(c)
            elif op == "_like":
                like.setdefault(c.path, []).append(c)
        self.eq, self.ins, self.rng, self.like = eq, ins, rng, like

    def range_on(self, path: tuple[str, ...], prefix: tuple) -> tuple[list, list] | None:
        """(ranges, used) for the one field after the pinned prefix, or None."""
        if path in self.ins:
            c, keys = self.ins[path]
            return [_point(prefix, k) for k in keys], [c]
        if path in self.rng:
            cmps = self.rng[path]
            rank = value_key(cmps[0].value)[0]
            lower = upper = None
            used = []
            for c in cmps:
                k = value_key(c.value)
                if k[0] != rank:
                    continue  # another type class: stays in the residual (and matches nothing)
                used.append(c)
                if c.op in ("_gt", "_ge"):
                    b = (k, c.op == "_ge")
                    if lower is None or b[0] > lower[0] or (b[0] == lower[0] and not b[1]):
                        lower = b
                else:
                    b = (k, c.op == "_le")
                    if upper is None or b[0] < upper[0] or (b[0] == upper[0] and not b[1]):
                        upper = b
            return [_range_bounds(prefix, rank, lower, upper)], used
        if path in self.like:
            for c in self.like[path]:
                pre, wild, exact = like_prefix(c.value)
                if not wild:
                    return [_point(prefix, (3, pre))], [c]
                lo = prefix + ((3, pre) if pre else (3,))
                hi = prefix + _next_str(pre)
                return [(lo, hi)], ([c] if exact else [])
        return None


@functools.lru_cache(maxsize=256)
def _order_paths(spec: tuple) -> tuple | None:
    """The field paths of an all-ascending order that ends with `_id` ASC, else None."""
    if spec[-1] != (("_id",), False):
        return None
    fields = spec[:-1]
    if any(desc for _, desc in fields):
        return None
    return tuple(p for p, _ in fields)


def _index_plans(indexes: Iterable[Index], conds: _Conds, conj: list, spec: tuple, limit: int | None,
                 offset: int) -> list:
    plans = []
    opaths = () if spec is _DEFAULT_SPEC else _order_paths(spec)
    for idx in indexes:
        prefix: tuple = ()
        used: list = []
        paths = idx.paths
        for path in paths:
            hit = conds.eq.get(path)
            if hit is None:
                break
            prefix += flat(hit[1])
            used.append(hit[0])
        k = len(used)
        n = len(paths)
        if k == n and idx.unique and 0 not in prefix[0::2]:
            # Every field pinned on a unique index: at most one row (a few while remote
            # duplicates exist); a direct key lookup, nothing can beat it.
            return [Plan("point", _residual(conj, used), idx, [(prefix, prefix + (END,))],
                         prefix, opaths == (), (), None, 1, used)]
        r = conds.range_on(paths[k], prefix) if k < n else None
        if r is not None:
            ranges, more = r
            used = used + more
        else:
            ranges = [(prefix, prefix + (END,))]
        ordered = opaths is not None and opaths == paths[k:]
        if not used and r is None and not ordered:
            continue  # the index neither narrows nor orders anything
        plans.append(Plan("index", _residual(conj, used), idx, ranges, prefix, ordered, (),
                          None, 0, used))
    if len(plans) > 1:
        # Estimates (exact range counts) only matter when there is a choice to make.
        for p in plans:
            est = p.rows()
            p.cost = est
            if p.ordered and limit is not None and p.residual is TRUE:
                p.cost = min(est, offset + limit + 1)
    return plans


def plan_query(source: DocSource, indexes: CollectionIndexes | Iterable[Index] | None, flt: Any, spec: tuple, *,
               limit: int | None = None, offset: int = 0,
               fallback_docs_max: int = FALLBACK_DOCS_MAX) -> Plan:
    """Choose a plan (see module doc). Raises QueryTooExpensiveError/IndexBuildingError."""
    node = flt.node if isinstance(flt, CompiledFilter) else flt
    conj = _conjuncts(node)
    for c in conj:
        if type(c) is Cmp and c.path == ("_id",) and c.op in ("_eq", "_in"):
            vals = (c.value,) if c.op == "_eq" else c.value
            ids = tuple(sorted({v for v in vals if type(v) is str}))
            return Plan("ids", _residual(conj, [c]), ids=ids, estimated_rows=len(ids),
                        cost=len(ids), used=[c])
    if indexes is None:
        indexes = ()
    conds = _Conds(conj)
    plans = _index_plans([i for i in indexes if i.state == READY], conds, conj, spec, limit, offset)
    if plans:
        if len(plans) == 1:
            return plans[0]
        return min(plans, key=lambda p: (p.cost, not p.ordered, p.index.name))
    total = source.count_all()
    if limit is not None and spec == ((("_id",), False),) and hasattr(source, "iter_by_id"):
        return Plan("id_scan", node, ordered=True, estimated_rows=min(total, offset + limit + 1),
                    cost=offset + limit + 1)
    if total <= fallback_docs_max:
        return Plan("scan", node, estimated_rows=total, cost=total)
    waiting = _index_plans([i for i in indexes if i.state in (BUILDING, DROPPED)],
                           conds, conj, spec, limit, offset)
    if waiting:
        best = min(waiting, key=lambda p: (p.cost, p.index.name))
        raise IndexBuildingError(
            f"index {best.index.name} is {best.index.state} ({len(best.index)} entries so far) and "
            f"a scan would read {total} documents (fallback_docs_max={fallback_docs_max}); "
            f"retry when the rebuild is done",
            index=best.index.name, progress=len(best.index), docs=total,
            fallback_docs_max=fallback_docs_max)
    raise QueryTooExpensiveError(
        f"no index serves this query and a scan would read {total} documents including "
        f"tombstones (fallback_docs_max={fallback_docs_max}); create an index on a filtered "
        f"or ordered field, or raise fallback_docs_max", docs=total,
        fallback_docs_max=fallback_docs_max)


def execute(source: DocSource, indexes: CollectionIndexes | Iterable[Index] | None, flt: Any = None,
            order: Any = None, *, limit: int | None = None, offset: int = 0, after: str | None = None,
            fallback_docs_max: int = FALLBACK_DOCS_MAX) -> QueryResult:
    """Run a query against `source` using `indexes`. Same results as query.select."""
    f = compile_filter(flt)
    spec = normalize_order(order)
    if not (limit is None and type(offset) is int and offset == 0):
        limit, offset = check_page_args(limit, offset)
    ck = decode_cursor(after, spec) if after is not None else None
    plan = plan_query(source, indexes, f, spec, limit=limit, offset=offset,
                      fallback_docs_max=fallback_docs_max)
    need = offset + limit + 1 if limit is not None else None
    m = None if plan.residual is TRUE else (f.match if plan.residual is f.node
                                            else node_pred(plan.residual))
    get = source.get
    if plan.kind == "point":
        rows = [d for d in map(get, plan.idx.ids_for_key(plan.prefix))
                if d is not None and (m is None or m(d))]
        if not plan.ordered or ck is not None:
            if ck is not None:
                kf = sort_key_fn(spec)
                rows = [d for d in rows if is_after(kf(d), ck, spec)]
            sort_docs(rows, spec)
    elif plan.kind == "index" and plan.ordered:
        rows = _walk_ordered(plan, ck, need, m, get)
    elif plan.kind == "id_scan":
        rows = _walk_ids(source, ck, need, m, fallback_docs_max)
    else:
        if plan.kind == "ids":
            cands = [d for d in map(get, plan.ids) if d is not None and not d.get("_deleted")]
        elif plan.kind == "index":
            cands = []
            ents = plan.idx.entries
            for lo, hi in plan.ranges:
                for e in ents.slice_range(lo, hi):
                    d = get(e[-1])
                    if d is not None:
                        cands.append(d)
        else:
            cands = [d for d in source.iter_docs() if not d.get("_deleted")]
        rows = cands if m is None else [d for d in cands if m(d)]
        if ck is not None:
            kf = sort_key_fn(spec)
            rows = [d for d in rows if is_after(kf(d), ck, spec)]
        sort_docs(rows, spec)
    docs, nxt = page(rows, spec, limit, offset)
    return QueryResult(docs, nxt, plan)


def _walk_ordered(plan: Plan, ck: tuple | None, need: int | None, m: Callable[[dict], bool] | None,
                  get: Callable[[str], dict | None]) -> list:
    seek = None
    if ck is not None:
        # Entries strictly after (cursor key, cursor id): the next id is cursor id + "\0".
        seek = plan.prefix
        for k in ck[:-1]:
            seek += flat(k)
        seek += (0, ck[-1][1] + "\x00")
    out: list = []
    ents = plan.idx.entries
    for lo, hi in plan.ranges:
        if seek is not None and lo < seek:
            lo = seek
            if not lo < hi:
                continue
        if m is None:
            room = None if need is None else need - len(out)
            for e in ents.slice_range(lo, hi, room):
                d = get(e[-1])
                if d is not None:
                    out.append(d)
        else:
            for e in ents.irange(lo, hi):
                d = get(e[-1])
                if d is not None and m(d):
                    out.append(d)
                    if need is not None and len(out) >= need:
                        break
        if need is not None and len(out) >= need:
            break
    return out


def _walk_ids(source: Any, ck: tuple | None, need: int | None, m: Callable[[dict], bool] | None,
              fallback_docs_max: int) -> list:
    out: list = []
    seen = 0
    after_id = ck[-1][1] if ck is not None else None
    for d in source.iter_by_id(after_id):
        seen += 1
        if seen > fallback_docs_max:
            raise QueryTooExpensiveError(
                f"no index serves this filter and {fallback_docs_max} documents were examined "
                f"without filling the page (fallback_docs_max={fallback_docs_max})",
                docs=seen, fallback_docs_max=fallback_docs_max)
        if m is None or m(d):
            out.append(d)
            if need is not None and len(out) >= need:
                break
    return out


def explain(source: DocSource, indexes: CollectionIndexes | Iterable[Index] | None, flt: Any = None,
            order: Any = None, *, limit: int | None = None, offset: int = 0,
            fallback_docs_max: int = FALLBACK_DOCS_MAX) -> dict:
    """Which path a query takes, with bounds and estimated rows; never raises for cost."""
    f = compile_filter(flt)
    spec = normalize_order(order)
    limit, offset = check_page_args(limit, offset)
    base = {"scan_docs": source.count_all(), "fallback_docs_max": fallback_docs_max,
            "order": [{".".join(p): "DESC" if d else "ASC"} for p, d in spec]}
    try:
        plan = plan_query(source, indexes, f, spec, limit=limit, offset=offset,
                          fallback_docs_max=fallback_docs_max)
    except IndexBuildingError as e:
        return {**base, "path": "refused", "reason": str(e), "waiting_for_index": e.index,
                "estimated_rows": e.docs}
    except QueryTooExpensiveError as e:
        return {**base, "path": "refused", "reason": str(e), "estimated_rows": e.docs}
    d = plan.describe()
    if plan.kind in ("index", "point"):
        d["bounds"] = [_describe_range(plan.idx, lo, hi) for lo, hi in plan.ranges[:20]]
    return {**base, **d}


_RANK_NAMES = {0: "null", 1: "boolean", 2: "number", 3: "string", 4: "bytes", 5: "list",
               6: "map", 7: "everything"}


def _describe_range(idx: Index, lo: tuple, hi: tuple) -> dict:
    """Human-readable flat bounds: values per field; a trailing end marker makes the bound
    exclusive (from) / inclusive (to); `<start of T>` = the first value of type T."""
    def side(b: tuple) -> tuple[list, bool]:
        out: list = []
        past, i = False, 0
        while i < len(b):
            r = b[i]
            if r == END:
                past = True
                break
            if i + 1 >= len(b):
                out.append(f"<start of {_RANK_NAMES[r]}>")
                break
            out.append(None if r == 0 else key_to_value((r, b[i + 1])))
            i += 2
        return out, past
    f, f_past = side(lo)
    t, t_past = side(hi)
    return {"fields": list(idx.definition.fields), "from": f,
            "from_inclusive": not f_past, "to": t, "to_inclusive": t_past}


class QueryEngine:
    """A source + its indexes + the fallback limit: `find` and `explain` for one collection."""

    def __init__(self, source: DocSource, indexes: CollectionIndexes | None = None, *,
                 fallback_docs_max: int = FALLBACK_DOCS_MAX) -> None:
        if type(fallback_docs_max) is not int or fallback_docs_max < 0:
            raise ValueError("fallback_docs_max must be a non-negative int")
        self.source = source
        self.indexes = indexes if indexes is not None else CollectionIndexes()
        self.fallback_docs_max = fallback_docs_max

    def find(self, flt: Any = None, order: Any = None, *, limit: int | None = None, offset: int = 0,
             after: str | None = None) -> QueryResult:
        return execute(self.source, self.indexes, flt, order, limit=limit, offset=offset,
                       after=after, fallback_docs_max=self.fallback_docs_max)

    def explain(self, flt: Any = None, order: Any = None, *, limit: int | None = None, offset: int = 0) -> dict:
        return explain(self.source, self.indexes, flt, order, limit=limit, offset=offset,
                       fallback_docs_max=self.fallback_docs_max)
