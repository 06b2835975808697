"""The planner: index choice, explain, scan bounds, and index plan == naive scan (property)."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core.query.filters import IndexBuildingError, QueryTooExpensiveError, select
from ostracon.core.query.index import BUILDING, CollectionIndexes
from ostracon.core.query.planner import DictSource, QueryEngine, execute, explain


def make(n=300, seed=1, indexes=(("city",), ("n",), ("city", "n"), ("name",))):
    rng = random.Random(seed)
    docs = [{"_id": f"d{i:04d}", "city": rng.choice(["Oslo", "Rome", "Bern", None]),
             "n": rng.choice([rng.randint(0, 50), rng.random() * 50, None, "s"]),
             "name": rng.choice(["ann", "anna", "bob", "carl", "Ann", ""]) + str(i % 7)}
            for i in range(n)]
    ci = CollectionIndexes("t")
    src = DictSource(docs, listener=ci.apply_change)
    for f in indexes:
        ci.create_index(list(f), docs=src.iter_docs())
    return src, ci


def same(src, ci, flt, order=None, **kw):
    got = execute(src, ci, flt, order, fallback_docs_max=10 ** 9, **kw)
    want = select(list(src.iter_docs()), flt, order, **kw)
    assert [d["_id"] for d in got.docs] == [d["_id"] for d in want[0]]
    assert got.next_cursor == want[1]
    return got.plan


def test_paths_chosen():
    src, ci = make()
    p = same(src, ci, {"city": "Oslo"})
    assert p["path"] == "index" and p["index"] == "idx_city" and not p["residual_filter"]
    p = same(src, ci, {"city": "Oslo", "n": {"_gt": 10, "_le": 40}})
    assert p["index"] == "idx_city__n" and len(p["conditions"]) == 3
    p = same(src, ci, {"n": {"_in": [1, 2, 3, "s"]}})
    assert p["index"] == "idx_n"
    assert p["estimated_rows"] == len(select(src.iter_docs(), {"n": {"_in": [1, 2, 3, "s"]}})[0])
    p = same(src, ci, {"name": {"_like": "ann%"}})
    assert p["index"] == "idx_name" and not p["residual_filter"]
    p = same(src, ci, {"name": {"_like": "an%3"}})
    assert p["index"] == "idx_name" and p["residual_filter"]
    p = same(src, ci, {"name": {"_like": "bob4"}})
    assert p["index"] == "idx_name" and p["estimated_rows"] <= 1 + 300 // 7
    p = same(src, ci, {"_id": {"_in": ["d0001", "d0005", "nope"]}, "city": {"_ne": None}})
    assert p["path"] == "ids" and p["residual_filter"]
    p = same(src, ci, {"name": {"_ilike": "ANN%"}})
    assert p["path"] == "scan"
    p = same(src, ci, {"_or": [{"city": "Oslo"}, {"n": 3}]})
    assert p["path"] == "scan"


def test_ordered_index_walk_stops_early_and_pages():
    src, ci = make(2000)
    p = same(src, ci, {"city": "Rome"}, ["n"], limit=5)
    assert p["path"] == "index" and p["index"] == "idx_city__n" and p["ordered"]
    p = same(src, ci, None, ["name"], limit=3, offset=2)
    assert p["index"] == "idx_name" and p["ordered"]
    # cursor pagination through an ordered index walk equals the naive pages
    cur, pages = None, []
    while True:
        r = execute(src, ci, {"city": {"_in": ["Rome", "Bern"]}}, ["n"], limit=37, after=cur)
        pages.extend(d["_id"] for d in r.docs)
        cur = r.next_cursor
        if cur is None:
            break
    assert pages == [d["_id"] for d in select(src.iter_docs(), {"city": {"_in": ["Rome", "Bern"]}}, ["n"])[0]]
    # descending order cannot use the ascending walk: it sorts instead
    p = same(src, ci, {"city": "Rome"}, ["-n"], limit=5)
    assert not p["ordered"]


def test_fallback_bound_counts_tombstones():
    src, ci = make(100, indexes=())
    eng = QueryEngine(src, ci, fallback_docs_max=120)
    assert len(eng.find({"city": "Oslo"}).docs) == len(select(src.iter_docs(), {"city": "Oslo"})[0])
    for d in list(src.docs)[:30]:
        src.delete(d)
    for i in range(30):
        src.put({"_id": f"new{i}", "city": "Oslo"})
    assert len(src.docs) == 100 and src.count_all() == 130
    with pytest.raises(QueryTooExpensiveError, match="130 documents including tombstones"):
        eng.find({"city": "Oslo"})
    e = eng.explain({"city": "Oslo"})
    assert e["path"] == "refused" and e["scan_docs"] == 130
    # an index makes it cheap again
    ci.create_index("city", docs=src.iter_docs())
    assert eng.explain({"city": "Oslo"})["path"] == "index"
    assert len(eng.find({"city": "Oslo"}).docs) == len(select(src.iter_docs(), {"city": "Oslo"})[0])


def test_id_ordered_limited_scan_is_bounded_by_examined_docs():
    src, ci = make(500, indexes=())
    eng = QueryEngine(src, ci, fallback_docs_max=100)
    r = eng.find(None, limit=10)
    assert r.plan["path"] == "id_scan" and len(r.docs) == 10
    r2 = eng.find(None, limit=10, after=r.next_cursor)
    assert [d["_id"] for d in r.docs + r2.docs] == sorted(src.docs)[:20]
    assert eng.find({"city": "Oslo"}, limit=3).plan["path"] == "id_scan"
    with pytest.raises(QueryTooExpensiveError, match="examined"):
        eng.find({"city": "Atlantis"}, limit=3)


def test_building_index_is_not_used_and_error_says_so():
    src, ci = make(200, indexes=())
    idx = ci.create_index("city")
    assert idx.state == BUILDING
    eng = QueryEngine(src, ci, fallback_docs_max=1000)
    assert eng.find({"city": "Oslo"}).plan["path"] == "scan"  # within the fallback bound
    eng.fallback_docs_max = 50
    with pytest.raises(IndexBuildingError) as e:
        eng.find({"city": "Oslo"})
    assert e.value.index == "idx_city"
    assert eng.explain({"city": "Oslo"})["waiting_for_index"] == "idx_city"


def test_explain_shows_bounds():
    src, ci = make()
    e = explain(src, ci, {"n": {"_gt": 5, "_lt": 9}})
    assert e["path"] == "index" and e["bounds"] == [
        {"fields": ["n"], "from": [5], "from_inclusive": False, "to": [9], "to_inclusive": False}]
    e = explain(src, ci, {"city": "Oslo", "n": {"_ge": 5}})
    assert e["bounds"][0]["from"] == ["Oslo", 5] and e["bounds"][0]["to"] == ["Oslo", "<start of string>"]
    assert e["order"] == [{"_id": "ASC"}] and "scan_docs" in e


def test_results_follow_live_changes():
    src, ci = make(300)
    eng = QueryEngine(src, ci)
    before = [d["_id"] for d in eng.find({"city": "Oslo"}).docs]
    src.put({"_id": "zz", "city": "Oslo", "n": 1, "name": "x"})
    src.delete(before[0])
    src.put({**src.get(before[1]), "city": "Rome"})
    now = [d["_id"] for d in eng.find({"city": "Oslo"}).docs]
    assert now == sorted(set(before[2:]) | {"zz"})


# --- property: for random data and random filters, plan result == naive scan -------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                    st.sampled_from([0.5, -1.5, 2.0, 1e30]),
                    st.sampled_from(["", "a", "ab", "abc", "b", "B", "ab%", "a_c"]))
VALUES = st.one_of(SCALARS, st.just([1]), st.just([]), st.just({"k": 1}))
FIELDS = ["a", "b", "c.x"]
COMPARABLE = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]),
                       st.sampled_from(["", "a", "ab", "b", "B"]))
PATTERNS = st.sampled_from(["a%", "ab%", "%b", "a_", "abc", "", "%", "A%", "ab\\%", "a%c", "_"])


@st.composite
def cond(draw):
    f = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(["_eq", "_ne", "_gt", "_ge", "_lt", "_le", "_in", "_nin", "_like",
                               "_ilike", "_nlike"]))
    if op in ("_eq", "_ne"):
        v = draw(VALUES)
    elif op in ("_in", "_nin"):
        v = draw(st.lists(VALUES, max_size=4))
    elif op in ("_like", "_ilike", "_nlike"):
        v = draw(PATTERNS)
    else:
        v = draw(COMPARABLE)
    return {f: {op: v}}


FILTERS = st.recursive(
    st.one_of(st.none(), cond()),
    lambda kids: st.one_of(
        st.lists(kids.filter(lambda k: k is not None), min_size=1, max_size=3).map(lambda x: {"_and": x}),
        st.lists(kids.filter(lambda k: k is not None), min_size=1, max_size=3).map(lambda x: {"_or": x}),
        kids.filter(lambda k: k is not None).map(lambda x: {"_not": x}),
        st.lists(cond(), min_size=2, max_size=3).map(
            lambda cs: {k: v for c in cs for k, v in c.items()}),
    ),
    max_leaves=5)
DOC = st.fixed_dictionaries({}, optional={
    "a": VALUES, "b": VALUES, "c": st.one_of(VALUES, st.fixed_dictionaries({}, optional={"x": VALUES}))})
ORDERS = st.sampled_from([None, ["a"], ["-a"], ["b", "a"], ["c.x"], [{"a": "ASC"}, {"b": "DESC"}],
                          ["a", "b"], ["b"]])
INDEXES = st.lists(st.sampled_from([("a",), ("b",), ("c.x",), ("a", "b"), ("b", "a"), ("a", "c.x")]),
                   unique=True, max_size=4)


@settings(max_examples=400, deadline=None)
@given(docs=st.lists(DOC, max_size=40), flt=FILTERS, order=ORDERS, idx=INDEXES,
       limit=st.one_of(st.none(), st.integers(0, 7)), offset=st.integers(0, 3),
       churn=st.integers(0, 2 ** 32))
def test_index_plan_equals_naive_scan(docs, flt, order, idx, limit, offset, churn):
    docs = [{"_id": f"d{i:02d}", **d} for i, d in enumerate(docs)]
    ci = CollectionIndexes("p")
    src = DictSource(docs[: len(docs) // 2], listener=ci.apply_change)
    for f in idx:
        ci.create_index(list(f), docs=src.iter_docs())
    # the second half arrives as changes, plus some deletes and rewrites
    rng = random.Random(churn)
    for d in docs[len(docs) // 2:]:
        src.put(d)
    for d in list(src.docs.values()):
        r = rng.random()
        if r < 0.15:
            src.delete(d["_id"])
        elif r < 0.3:
            src.put({**d, "a": rng.choice([None, 1, "ab", 2.0])})
    same(src, ci, flt, order, limit=limit, offset=offset)
    if limit:  # walk every page with cursors: same concatenation as the naive pages
        cur, got, want = None, [], []
        for _ in range(50):
            r = execute(src, ci, flt, order, limit=limit, after=cur, fallback_docs_max=10 ** 9)
            w = select(list(src.iter_docs()), flt, order, limit=limit, after=cur)
            got += [d["_id"] for d in r.docs]
            want += [d["_id"] for d in w[0]]
            assert r.next_cursor == w[1]
            cur = r.next_cursor
            if cur is None:
                break
        assert got == want


@st.composite
def sargable(draw):
    f = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(["_eq", "_gt", "_ge", "_lt", "_le", "_in", "_like"]))
    if op == "_eq":
        v = draw(VALUES)
    elif op == "_in":
        v = draw(st.lists(VALUES, max_size=4))
    elif op == "_like":
        v = draw(PATTERNS)
    else:
        v = draw(COMPARABLE)
    return {f: {op: v}}


@settings(max_examples=400, deadline=None)
@given(docs=st.lists(DOC, max_size=40), conds=st.lists(sargable(), min_size=1, max_size=3),
       order=ORDERS, idx=INDEXES.filter(bool), limit=st.one_of(st.none(), st.integers(0, 7)),
       offset=st.integers(0, 3))
def test_conjunctions_of_indexable_conditions_equal_naive_scan(docs, conds, order, idx, limit, offset):
    """Conjunctions of index-friendly conditions: the plans that use ranges, _in point sets,
    prefixes and ordered walks most, each checked against the naive scan."""
    docs = [{"_id": f"d{i:02d}", **d} for i, d in enumerate(docs)]
    ci = CollectionIndexes("p")
    src = DictSource(docs, listener=ci.apply_change)
    for f in idx:
        ci.create_index(list(f), docs=src.iter_docs())
    same(src, ci, {"_and": conds}, order, limit=limit, offset=offset)


def test_every_bound_exhaustively():
    """Each single condition at every boundary value, on a single and a compound index."""
    vals = [None, False, True, -1, 0, 0.5, 1, 1.0, 2, "", "a", "ab", "b", b"", b"a", [1], {"k": 1}]
    docs = [{"_id": f"d{i:02d}{j}", "a": v, "b": w} for i, v in enumerate(vals)
            for j, w in enumerate(["x", "y"])]
    for fields in (["a"], ["b", "a"]):
        ci = CollectionIndexes("p")
        src = DictSource(docs)
        ci.create_index(fields, docs=docs)
        for op in ("_gt", "_ge", "_lt", "_le", "_eq", "_in"):
            for v in vals:
                if op in ("_gt", "_ge", "_lt", "_le") and (v is None or isinstance(v, (list, dict))):
                    continue
                flt = {"a": {op: [v, 2] if op == "_in" else v}}
                if fields[0] == "b":
                    flt["b"] = "y"
                p = same(src, ci, flt)
                assert p["path"] == "index", (flt, p)
                p = same(src, ci, flt, fields[-1:], limit=3)
        for pat in ["a%", "", "%", "ab", "a_", "b%"]:
            same(src, ci, {"a": {"_like": pat}, "b": "x"})


def test_unique_point_lookups_with_remote_duplicates():
    docs = [{"_id": f"u{i}", "email": f"e{i % 50}", "n": i} for i in range(50)]
    ci = CollectionIndexes("u")
    src = DictSource(docs, listener=ci.apply_change)
    ci.create_index("email", unique=True, docs=src.iter_docs())
    p = same(src, ci, {"email": "e7"})
    assert p["path"] == "index" and p["lookup"] == "key" and p["estimated_rows"] == 1
    # concurrent remote creates duplicated a unique value: queries still see every row
    src.put({"_id": "r1", "email": "e7", "n": -1})
    src.put({"_id": "a0", "email": "e7", "n": 99})
    assert len(ci.violations()) == 1
    for order in (None, ["-_id"], ["n"]):
        for limit in (None, 1, 2):
            same(src, ci, {"email": "e7"}, order, limit=limit)
            same(src, ci, {"email": "e7", "n": {"_gt": 0}}, order, limit=limit)
        cur, got = None, []
        while True:
            r = execute(src, ci, {"email": "e7"}, order, limit=1, after=cur)
            got += [d["_id"] for d in r.docs]
            cur = r.next_cursor
            if cur is None:
                break
        assert got == [d["_id"] for d in select(src.iter_docs(), {"email": "e7"}, order)[0]]
    src.delete("r1")
    src.put({"_id": "a0", "email": "other", "n": 99})
    assert ci.violations() == []
    same(src, ci, {"email": "e7"})
    same(src, ci, {"email": None})
