"""The query layer wired into Collection/Database: find, find_page, explain, indexes kept up
to date by local and remote changes, unique indexes, rebuilds stepped by db.tick() under an
injected clock, hot/warm/cold tiers, and persistence of index definitions."""

import random

import pytest

import ostracon
from db_helpers import ID_A, ID_B, Clock, open_db
from ostracon import ConflictError, ValidationError
from ostracon.core.query.filters import select
from ostracon.db import IndexBuildingError, QueryCursorError, QueryTooExpensiveError


def ids(docs):
    return [d["_id"] for d in docs]


def fill(col, n, start=0):
    for i in range(start, start + n):
        col.create({"n": i, "cat": f"c{i % 4}", "title": f"title {i:03d}",
                    "email": f"u{i}@x.org", "author": {"name": f"a{i % 3}"}}, id=f"d{i:04d}")


@pytest.fixture
def db():
    d = open_db()
    yield d
    d.close()


# ------------------------------------------------------------------ find / find_page / explain

def test_find_filters_order_limit_offset(db):
    col = db.collection("c")
    fill(col, 20)
    assert ids(col.find({"cat": "c1"})) == ["d0001", "d0005", "d0009", "d0013", "d0017"]
    assert ids(col.find({"n": {"_ge": 17}}, order={"n": "DESC"})) == ["d0019", "d0018", "d0017"]
    assert ids(col.find({"author": {"name": {"_eq": "a2"}}}, ["-n"], limit=2)) == ["d0017", "d0014"]
    assert ids(col.find({"author.name": {"_ilike": "A0"}}, limit=2, offset=1)) == ["d0003", "d0006"]
    assert ids(col.find({"_or": [{"n": 1}, {"n": {"_in": [2, 3]}}], "_not": {"n": 2}})) == ["d0001", "d0003"]
    assert col.find({"n": {"_eq": None}}) == []
    assert len(col.find()) == 20
    # returned documents are copies: mutating them changes nothing
    d = col.find({"n": 1})[0]
    d["author"]["name"] = "zz"
    assert col.get("d0001")["author"] == {"name": "a1"}


def test_find_page_cursor_is_stable_under_writes(db):
    col = db.collection("c")
    fill(col, 30)
    col.create_index("cat")
    order = [{"cat": "ASC"}, {"n": "DESC"}]
    want = ids(col.find(None, order))
    seen = []
    docs, cur = col.find_page(None, order, limit=7)
    seen += ids(docs)
    n = 100
    while cur is not None:
        # writes between pages: new docs, deletes of seen and unseen docs, moves
        col.create({"n": n, "cat": "c0"}, id=f"new{n}")   # sorts before the cursor in c0 … or not
        n += 1
        col.delete(seen[0]) if col.get(seen[0]) else None
        docs, cur = col.find_page(None, order, limit=7, after=cur)
        seen += ids(docs)
    assert len(seen) == len(set(seen)), "a document was repeated"
    # every original document whose sort key did not change and was not deleted is seen
    survivors = [i for i in want if col.get(i) is not None]
    assert all(i in seen for i in survivors)


def test_cursor_of_another_order_is_refused(db):
    col = db.collection("c")
    fill(col, 5)
    _, cur = col.find_page(None, ["n"], limit=2)
    with pytest.raises(QueryCursorError):
        col.find(None, ["title"], limit=2, after=cur)
    with pytest.raises(ValidationError):
        col.find({"n": {"_bogus": 1}})
    with pytest.raises(ValidationError):
        col.find(None, limit=-1)


def test_explain_paths(db):
    col = db.collection("c")
    fill(col, 10)
    assert col.explain({"_id": {"_in": ["d0001", "d0002"]}})["path"] == "ids"
    assert col.explain({"n": 3})["path"] == "scan"
    assert col.explain(None, limit=3)["path"] == "id_scan"
    col.create_index("n")
    e = col.explain({"n": {"_gt": 3}})
    assert e["path"] == "index" and e["index"] == "idx_n" and e["collection"] == "c"
    assert e["estimated_rows"] == 6 and e["bounds"][0]["from"] == [3]
    assert col.explain({"n": 3, "title": {"_like": "t%"}})["residual_filter"] is True
    col.create_index("email", unique=True)
    assert col.explain({"email": "u3@x.org"})["lookup"] == "key"


def test_fallback_docs_max_counts_tombstones(db):
    col = db.collection("c")
    fill(col, 10)
    for i in range(6):
        col.delete(f"d{i:04d}")
    assert len(col.find({"n": {"_ge": 0}}, fallback_docs_max=10)) == 4
    with pytest.raises(QueryTooExpensiveError) as e:
        col.find({"n": {"_ge": 0}}, fallback_docs_max=9)   # 4 live + 6 tombstones = 10 docs
    assert e.value.docs == 10
    assert col.explain({"n": 1}, fallback_docs_max=9)["path"] == "refused"
    db.fallback_docs_max = 9
    with pytest.raises(QueryTooExpensiveError):
        col.find({"n": 1})
    col.create_index("n")
    assert ids(col.find({"n": 7})) == ["d0007"]   # an index makes it cheap again


# ------------------------------------------------------------------ index maintenance

def naive(col, flt=None, order=None, **kw):
    everything, cur = col.scan(limit=100_000)
    assert cur is None
    return ids(select(everything, flt, order, **kw)[0])


def test_indexes_follow_local_writes(db):
    col = db.collection("c")
    fill(col, 12)
    col.create_index("cat")
    col.create_index(["cat", "n"], name="cat_n")
    col.create_index("author.name")
    col.patch("d0001", {"cat": "c0"})
    col.update("d0002", {"cat": "c9", "n": 99})
    col.delete("d0004")
    col.increment("d0008", "n", 100)
    col.patch("d0005", {}, unset=["cat"])
    col.create({"cat": "c0", "n": -1, "author": {"name": "a2"}}, id="d0100")
    col.delete("d0100")
    col.create({"cat": "c0", "n": -2}, id="d0100")   # resurrected with new fields
    for flt, order in [({"cat": "c0"}, None), ({"cat": "c0"}, ["n"]), ({"cat": "c9"}, None),
                       ({"cat": {"_eq": None}}, None), ({"cat": "c0", "n": {"_gt": 0}}, ["-n"]),
                       ({"author.name": "a2"}, None), ({"n": {"_ge": 100}}, None)]:
        assert ids(col.find(flt, order)) == naive(col, flt, order), flt
    assert col.explain({"cat": "c0", "n": {"_gt": 0}})["index"] == "cat_n"
    entries = {i["name"]: i["entries"] for i in col.indexes()}
    assert entries["idx_cat"] == col.count() == 12


def test_indexes_follow_remote_changes():
    a, b = open_db(ID_A, seed=1), open_db(ID_B, seed=2)
    ca, cb = a.collection("c"), b.collection("c")
    cb.create_index("cat")
    fill(ca, 15)
    ca.patch("d0003", {"cat": "c1"})
    ca.delete("d0005")
    a.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    assert ids(cb.find({"cat": "c1"})) == ["d0001", "d0003", "d0009", "d0013"]
    assert cb.explain({"cat": "c1"})["path"] == "index"
    assert ids(cb.find({"cat": "c1"})) == naive(cb, {"cat": "c1"})
    assert a.state_hash() == b.state_hash()
    a.close(), b.close()


# ------------------------------------------------------------------ unique indexes

def test_unique_index_refuses_local_duplicates_and_changes_nothing(db):
    col = db.collection("users")
    col.create({"email": "a@x", "name": "A"}, id="a")
    col.create({"email": "b@x", "name": "B"}, id="b")
    col.create({"name": "no email"}, id="c")
    col.create({"name": "no email either"}, id="d")    # missing values are not constrained
    assert col.create_index("email", unique=True) == "uidx_email"
    before = (db.state_hash(), db.heads(), db.version_vector(), db.pending_writes)
    feed_before = db.changes()[1]
    attempts = [
        lambda: col.create({"email": "a@x"}),
        lambda: col.create({"email": "a@x"}, id="z"),
        lambda: col.patch("b", {"email": "a@x"}),
        lambda: col.update("c", {"email": "b@x"}),
        lambda: col.patch("c", {"email": "a@x", "name": "x"}),
    ]
    for attempt in attempts:
        with pytest.raises(ConflictError, match="uidx_email"):
            attempt()
        assert (db.state_hash(), db.heads(), db.version_vector(), db.pending_writes) == before
    assert db.changes(after=feed_before)[0] == []
    col.patch("a", {"name": "A2"})            # its own key is no conflict
    col.patch("a", {"email": "a2@x"})
    col.create({"email": "a@x"}, id="e")      # the old value is free again
    col.delete("e")
    col.patch("b", {"email": "a@x"})          # and again after a delete
    with pytest.raises(ConflictError, match="document b"):
        col.create({"email": "a@x"})
    assert col.unique_violations() == []


def test_unique_compound_and_nested(db):
    col = db.collection("c")
    col.create_index(["org", "user.login"], unique=True, name="org_login")
    col.create({"org": 1, "user": {"login": "x"}})
    col.create({"org": 2, "user": {"login": "x"}})
    col.create({"org": 1, "user": {"login": "y"}})
    with pytest.raises(ConflictError, match="org_login"):
        col.create({"org": 1, "user": {"login": "x"}, "other": True})
    assert col.unique_violations() == []


def test_creating_a_unique_index_over_duplicates_is_refused(db):
    col = db.collection("c")
    col.create({"k": 1}, id="a")
    col.create({"k": 1}, id="b")
    with pytest.raises(ConflictError):
        col.create_index("k", unique=True)
    assert col.indexes() == []
    col.create({"k": 1}, id="c")   # nothing left half-defined


def test_remote_duplicates_are_reported_not_refused():
    a, b = open_db(ID_A, seed=1), open_db(ID_B, seed=2)
    for d in (a, b):
        d.collection("users").create_index("email", unique=True)
    a.collection("users").create({"email": "same@x"}, id="from_a")
    b.collection("users").create({"email": "same@x"}, id="from_b")
    a.flush(), b.flush()
    a.apply_blocks(b.blocks_since(a.version_vector()))
    b.apply_blocks(a.blocks_since(b.version_vector()))
    for d in (a, b):
        v = d.collection("users").unique_violations()
        assert v == [{"index": "uidx_email", "fields": ["email"], "values": ["same@x"],
                      "ids": ["from_a", "from_b"]}]
        assert len(d.collection("users").find({"email": "same@x"})) == 2
    assert a.state_hash() == b.state_hash()
    a.collection("users").patch("from_a", {"email": "other@x"})
    assert a.collection("users").unique_violations() == []
    a.close(), b.close()


# ------------------------------------------------------------------ rebuilds under the throttle

def test_rebuild_is_throttled_by_the_injected_clock():
    clock = Clock()
    db = open_db(clock=clock, index_sync_build_docs=10, rebuild_batch_size=10,
                 rebuild_rate_docs_per_s=100, fallback_docs_max=5)
    col = db.collection("c")
    fill(col, 45)
    assert col.create_index("cat") == "idx_cat"
    assert col.indexes()[0]["state"] == "building"
    # building indexes are not used; the scan is refused beyond fallback_docs_max
    with pytest.raises(IndexBuildingError) as e:
        col.find({"cat": "c1"})
    assert e.value.index == "idx_cat" and e.value.eta_ms >= 450
    assert col.explain({"cat": "c1"})["path"] == "refused"
    assert len(col.find({"cat": "c1"}, fallback_docs_max=100)) == 11   # or allow the scan
    start = clock.t
    processed = 0
    done = False
    for step in range(1, 40):
        clock.t = start + 25 * step
        events = db.tick()
        processed += sum(ev.docs for ev in events if ev.kind == "batch")
        # never more than rate × elapsed (the bucket starts empty)
        assert processed <= 100 * (clock.t - start) // 1000, (step, processed)
        if step == 5:  # a write behind the rebuild cursor is indexed too
            col.create({"cat": "c1", "n": -1}, id="a0000")
            col.patch("d0040", {"cat": "c1"})
        if any(ev.kind == "done" for ev in events):
            done = True
            break
    assert done and clock.t - start >= 450
    assert col.indexes()[0]["state"] == "ready"
    assert ids(col.find({"cat": "c1"})) == naive(col, {"cat": "c1"})
    assert "a0000" in ids(col.find({"cat": "c1"})) and "d0040" in ids(col.find({"cat": "c1"}))
    assert db.rebuild_status("c")[0]["state"] == "done"
    db.close()


def test_small_collections_build_at_once_and_manual_rebuild(db):
    col = db.collection("c")
    fill(col, 30)
    col.create_index("n")
    assert col.indexes()[0]["state"] == "ready"
    col.rebuild_indexes()
    assert col.indexes()[0]["state"] == "ready" and col.indexes()[0]["entries"] == 30
    col.drop_index("idx_n")
    assert col.indexes() == []
    assert col.explain({"n": 1})["path"] == "scan"
    with pytest.raises(ostracon.NotFoundError):
        col.drop_index("idx_n")


def test_maintenance_failure_is_a_gap_and_triggers_a_rebuild(db, monkeypatch):
    col = db.collection("c")
    fill(col, 5)
    col.create_index("n")
    calls = []
    real = db.indexing.catalog.on_change

    def flaky(*a):
        calls.append(a)
        if len(calls) == 1:
            raise RuntimeError("index bug")
        return real(*a)
    monkeypatch.setattr(db.indexing.catalog, "on_change", flaky)
    col.patch("d0001", {"n": 50})
    assert isinstance(db.callback_errors[-1], RuntimeError)
    assert ids(col.find({"n": 50})) == ["d0001"]   # rebuilt from the documents at once
    assert col.find({"n": 1}) == []


# ------------------------------------------------------------------ tiers

def test_warm_and_cold_tiers(db):
    col = db.collection("c")
    fill(col, 10)
    col.create_index("cat")
    assert col.tier == "hot"
    col.set_tier("warm")
    assert col.tier == "warm" and col.metadata()["index_state"] == {"idx_cat": "dropped"}
    assert ids(col.find({"cat": "c2"})) == ["d0002", "d0006"]   # wakes it: hot again
    assert col.tier == "hot" and col.indexes()[0]["state"] == "ready"
    col.set_tier("cold")
    assert col.metadata()["state"] == "cold" and col.metadata()["index_state"] == {"idx_cat": "dropped"}
    assert col.get("d0001")["n"] == 1                           # any access wakes it
    assert col.tier == "hot" and col.indexes()[0]["state"] == "ready"
    assert ids(col.find({"cat": "c2"})) == ["d0002", "d0006"]
    col.set_tier("cold")
    assert col.restore() == "warm"                               # ahead of use
    assert col.tier == "warm" and ids(col.find({"cat": "c2"})) == ["d0002", "d0006"]
    assert col.tier == "hot"
    with pytest.raises(ValidationError):
        col.set_tier("lukewarm")


def test_cold_collection_still_merges_remote_changes():
    a, b = open_db(ID_A, seed=1), open_db(ID_B, seed=2)
    cb = b.collection("c")
    cb.create_index("cat")
    cb.set_tier("cold")
    fill(a.collection("c"), 8)
    a.flush()
    assert b.apply_blocks(a.blocks_since(b.version_vector())) == 8
    assert a.state_hash() == b.state_hash() and cb.tier == "cold"
    assert ids(cb.find({"cat": "c3"})) == ["d0003", "d0007"]
    a.close(), b.close()


def test_idle_collections_are_demoted_by_tick(db):
    clock = Clock()
    d = open_db(clock=clock, auto_tier=True, warm_after_ms=1_000, cold_after_ms=5_000)
    col, other = d.collection("c"), d.collection("other")
    fill(col, 4)
    col.create_index("cat")
    other.create({"x": 1}, id="o")
    d.tick()
    clock.t += 999
    d.tick()
    assert col.tier == "hot"
    other.get("o")          # access time = the last clock reading (T0 + 999)
    clock.t += 1
    d.tick()
    assert col.tier == "warm" and other.tier == "hot"
    clock.t += 4_500        # c idle 5,500 ms, other idle 4,501 ms
    d.tick()
    assert col.tier == "cold" and other.tier == "warm"
    assert ids(col.find({"cat": "c1"})) == ["d0001"] and col.tier == "hot"
    d.close()


# ------------------------------------------------------------------ persistence

def test_index_definitions_and_tiers_survive_reopen(tmp_path):
    path = tmp_path / "db"
    db = open_db(path=path)
    col = db.collection("c")
    fill(col, 10)
    col.create_index("cat")
    col.create_index("email", unique=True)
    db.collection("archive").create({"x": 1}, id="a")
    db.collection("archive").set_tier("cold")
    db.close()
    db = open_db(path=path)
    col = db.collection("c")
    assert col.metadata()["index_state"] == {"idx_cat": "dropped", "uidx_email": "dropped"}
    assert col.tier == "warm"                     # entries are rebuilt on first use
    assert ids(col.find({"cat": "c1"})) == ["d0001", "d0005", "d0009"]
    assert col.explain({"cat": "c1"})["path"] == "index"
    with pytest.raises(ConflictError):
        col.create({"email": "u1@x.org"})
    assert db.collection("archive").tier == "cold"
    assert db.collection("archive").get("a")["x"] == 1
    assert db.collection("archive").tier == "hot"
    db.close()


def test_read_only_open_keeps_working(tmp_path):
    path = tmp_path / "db"
    db = open_db(path=path)
    fill(db.collection("c"), 3)
    db.collection("c").create_index("n")
    db.close()
    ro = open_db(path=path, read_only=True)
    assert ids(ro.collection("c").find({"n": 2})) == ["d0002"]
    ro.close()


# ------------------------------------------------------------------ property: planner == naive

_VALUES = [None, True, False, 0, 1, 2, 2.5, -1, "", "a", "ab", "b", "B", "abc", b"\x00",
           [1], {"x": 1}]
_FIELDS = ["a", "b", "c", "m.x"]


def _rand_value(rng):
    return rng.choice(_VALUES)


def _rand_doc(rng):
    d = {}
    for f in ("a", "b", "c"):
        if rng.random() < 0.85:
            d[f] = _rand_value(rng)
    if rng.random() < 0.5:
        d["m"] = {"x": _rand_value(rng)} if rng.random() < 0.8 else rng.choice([1, "m"])
    return d


def _rand_cond(rng):
    op = rng.choice(["_eq", "_ne", "_gt", "_ge", "_lt", "_le", "_in", "_nin", "_like", "_ilike",
                     "_nlike"])
    if op in ("_in", "_nin"):
        return {op: [_rand_value(rng) for _ in range(rng.randrange(0, 4))]}
    if op in ("_like", "_ilike", "_nlike"):
        return {op: rng.choice(["a%", "%b", "a_", "A%", "ab", "%", "_"])}
    if op in ("_gt", "_ge", "_lt", "_le"):
        return {op: rng.choice([0, 1, 2, 2.5, "a", "ab", True, b"\x00"])}
    return {op: _rand_value(rng)}


def _rand_filter(rng, depth=0):
    r = rng.random()
    if depth < 2 and r < 0.15:
        return {rng.choice(["_and", "_or"]): [_rand_filter(rng, depth + 1)
                                              for _ in range(rng.randrange(1, 3))]}
    if depth < 2 and r < 0.2:
        return {"_not": _rand_filter(rng, depth + 1)}
    out = {}
    for _ in range(rng.randrange(1, 3)):
        out[rng.choice(_FIELDS)] = _rand_cond(rng)
    return out


@pytest.mark.parametrize("seed", range(30))
def test_property_find_with_indexes_equals_naive_scan(seed):
    rng = random.Random(seed)
    db = open_db(seed=seed)
    col = db.collection("p")
    for i in range(rng.randrange(20, 60)):
        col.create(_rand_doc(rng), id=f"k{i:04d}")
    deleted = []
    for fields in rng.sample([["a"], ["b"], ["c"], ["m.x"], ["a", "b"], ["b", "c"], ["c", "a", "m.x"]],
                             rng.randrange(1, 5)):
        col.create_index(fields)
    for _ in range(rng.randrange(5, 30)):    # writes after the indexes exist
        live = [d["_id"] for d in col.scan(limit=10_000)[0]]
        k = rng.choice(live)
        r = rng.random()
        if r < 0.4:
            col.patch(k, {f: _rand_value(rng) for f in rng.sample(["a", "b", "c"], 2)})
        elif r < 0.55:
            col.delete(k)
            deleted.append(k)
        elif r < 0.7:
            col.patch(k, {}, unset=[rng.choice(["a", "b", "c"])])
        elif r < 0.85:
            col.update(k, _rand_doc(rng))
        elif deleted and r < 0.92:
            col.create(_rand_doc(rng), id=deleted.pop())   # resurrect a tombstoned id
        else:
            col.create(_rand_doc(rng))
    everything = col.scan(limit=10_000)[0]
    for q in range(40):
        flt = _rand_filter(rng)
        order = rng.choice([None, ["a"], ["b", "-c"], [{"m": {"x": "DESC"}}], ["c", "a"], ["-a"]])
        limit = rng.choice([None, 1, 3, 10])
        offset = rng.choice([0, 0, 2])
        got = ids(col.find(flt, order, limit, offset))
        want = ids(select(everything, flt, order, limit=limit, offset=offset)[0])
        assert got == want, f"seed={seed} q={q} filter={flt} order={order} limit={limit} " \
                            f"offset={offset} plan={col.explain(flt, order, limit, offset)}"
        if limit:
            pages, cur = [], None
            while True:
                docs, cur = col.find_page(flt, order, limit, after=cur)
                pages += ids(docs)
                if cur is None:
                    break
            assert pages == ids(select(everything, flt, order)[0]), f"seed={seed} q={q} {flt}"
    db.close()


def test_views_match_to_doc_and_results_are_owned(db):
    col = db.collection("c")
    fill(col, 5)
    col.patch("d0001", {"tags": ["x", {"y": [1]}]})
    col.increment("d0002", "n", 3)
    col.delete("d0003")
    other = open_db(ID_B, seed=2)
    other.collection("c").create({"n": 1}, id="d0004")   # a concurrent edit: two heads
    other.flush()
    db.apply_blocks(other.blocks_since({}))
    other.close()
    states = db.replica.collections["c"]
    assert len(states["d0004"].heads) == 2
    for doc_id, s in states.items():
        want = s.to_doc()
        got = col.get(doc_id, include_deleted=True)
        assert got == want and list(got) == list(want)      # same keys, same order
        if not s.deleted:
            assert col.get(doc_id) == want
    found = {d["_id"]: d for d in col.find()}
    assert found["d0004"]["_heads"] == states["d0004"].to_doc()["_heads"]
    assert list(found["d0001"]) == list(states["d0001"].to_doc())
    assert col.find({"_heads": {"_eq": found["d0002"]["_heads"]}})[0]["_id"] == "d0002"
    found["d0001"]["tags"][1]["y"].append(2)                  # copies all the way down
    assert col.get("d0001")["tags"] == ["x", {"y": [1]}]
    page, _ = col.scan()
    page[0]["author"]["name"] = "changed"
    assert col.get(page[0]["_id"])["author"]["name"] != "changed"
