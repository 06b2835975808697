"""Indexes that just work: a large collection's index builds by itself under the throttle,
the first query waits for it instead of failing, and after a reopen the driver rebuilds
the indexes so the first indexed query answers without a hand-written tick() loop."""

from __future__ import annotations

import pytest

import ostracon
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity

DOCS = 20_000


def fill(db, n: int = DOCS) -> None:
    col = db.collection("c")
    for i in range(n):
        col.create({"k": i % 100, "i": i}, id=f"d{i:06d}")


def test_create_index_on_a_large_collection_then_the_first_find_works(tmp_path):
    path = tmp_path / "db"
    db = ostracon.open(path)
    fill(db)
    db.collection("c").create_index("k")               # > index_sync_build_docs: throttled job
    found = db.collection("c").find({"k": {"_eq": 5}})  # waits for the driver's build
    assert sorted(d["i"] for d in found) == list(range(5, DOCS, 100))
    assert db.collection("c").explain({"k": {"_eq": 5}})["path"] == "index"
    db.close()

    db = ostracon.open(path)                             # indexes open warm; the driver rebuilds
    found = db.collection("c").find({"k": {"_eq": 7}})
    assert sorted(d["i"] for d in found) == list(range(7, DOCS, 100))
    assert [i["state"] for i in db.collection("c").indexes()] == ["ready"]
    db.close()


def test_create_index_wait_returns_when_ready_and_reports_progress(tmp_path):
    db = ostracon.open(tmp_path / "db")
    fill(db, 8_000)
    seen = []
    name = db.collection("c").create_index("k", wait=True, progress=lambda done, total: seen.append((done, total)))
    assert [i["state"] for i in db.collection("c").indexes() if i["name"] == name] == ["ready"]
    assert seen and seen[-1] == (8_000, 8_000)
    assert all(d <= t for d, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    db.close()


def test_without_a_driver_a_query_during_a_build_raises_at_once():
    t = [1_000]
    db = ostracon.open(clock=lambda: t[0], index_sync_build_docs=10, fallback_docs_max=10)
    fill(db, 50)
    db.collection("c").create_index("k")
    with pytest.raises(ostracon.IndexBuildingError):
        db.collection("c").find({"k": {"_eq": 5}})
    for _ in range(3):                                  # the caller drives the rebuild
        t[0] += 1_000
        db.tick()
    assert len(db.collection("c").find({"k": {"_eq": 5}})) == 1
    db.close()


def test_an_index_wait_timeout_of_zero_raises_instead_of_waiting(tmp_path):
    db = ostracon.open(tmp_path / "db", index_wait_ms=0, rebuild_rate_docs_per_s=1,
                       fallback_docs_max=10)
    fill(db, 6_000)
    db.collection("c").create_index("k")
    with pytest.raises(ostracon.IndexBuildingError) as e:
        db.collection("c").find({"k": {"_eq": 5}})
    assert e.value.eta_ms > 0
    db.close()


# ------------------------------------------------------------------ tiers change memory, not answers

USER = "type User { name: String!, email: String, n: Int, tags: [String] }"


def tiered_db(index_sync_build_docs: int, driven: bool, docs: int):
    """A collection with a schema, an index, a unique index, a merged duplicate key and a
    merged schema violation (from a replica that has no schema): every read API has
    something to say. `driven`: a real clock and the background driver; else a scripted
    clock (no driver)."""
    clock = None if driven else (lambda: 1_700_000_000_000)
    kw = {"clock": clock} if clock else {}
    db = ostracon.open(identity=Identity.from_seed(bytes([1]) * 32), random_bytes=DeterministicRandom("tiers-1"),
                       index_sync_build_docs=index_sync_build_docs, fallback_docs_max=10, **kw)
    db.define_schema(USER)
    col = db.collection("User")
    col.create_index("n")
    col.create_index("email", unique=True)
    for i in range(docs):
        col.create({"name": f"user {i:03d}", "email": f"u{i}@x.org", "n": i % 5,
                    "tags": [f"t{i % 2}"]}, id=f"u{i:03d}")
    col.delete("u004")
    other = ostracon.open(identity=Identity.from_seed(bytes([2]) * 32), random_bytes=DeterministicRandom("tiers-2"),
                          **kw)
    other.collection("User").create({"email": "u1@x.org", "n": 1}, id="dup")  # no name, same email
    other.flush()
    db.apply_blocks(other.blocks_since({}))
    other.close()
    db.flush()  # commits signed now: history's signature status is not a background race
    return db


def read_answers(db, cursor):
    """Every read API of a collection, as plain values."""
    col = db.collection("User")
    flt, order = {"n": {"_eq": 1}}, [{"n": "ASC"}, {"name": "DESC"}]
    page, nxt = col.find_page(flt, order, limit=3)
    return {
        "find": col.find(flt), "find_order": col.find({"n": {"_ge": 3}}, order, limit=4, offset=1),
        "find_page": (page, nxt), "after_cursor": col.find(flt, order, after=cursor),
        "count": col.count(), "count_all": col.count(include_deleted=True),
        "explain": col.explain(flt), "explain_order": col.explain(None, [{"n": "DESC"}], limit=2),
        "indexes": col.indexes(), "unique_violations": col.unique_violations(),
        "schema_violations": col.schema_violations(),
        "get": col.get("u003"), "get_many": col.get_many(["u001", "u004", "nope"]),
        "scan": col.scan(limit=5), "iter_by_id": list(col.iter_by_id("u035")),
        "count_all_docs": col.count_all(), "history": col.history("u003"),
        "blame": col.blame("u003"),
        "graphql": db.graphql('{ User(filter: {n: {_eq: 2}}, order: {email: DESC}) { _docID name email } '
                              '  _count(User: {filter: {n: {_eq: 1}}}) }'),
    }


@pytest.mark.parametrize("tier", ["warm", "cold"])
@pytest.mark.parametrize("size", ["small", "large"])
def test_every_read_answers_on_a_warm_or_cold_collection_as_on_a_hot_one(tier, size):
    # small: indexes come back at once on first access (no driver, scripted clock);
    # large: indexes come back through a throttled rebuild that reads wait for (driver).
    large = size == "large"
    db = tiered_db(index_sync_build_docs=10 if large else 5_000, driven=large, docs=40)
    col = db.collection("User")
    assert col.tier == "hot"
    first, cursor = col.find_page({"n": {"_eq": 1}}, [{"n": "ASC"}, {"name": "DESC"}], limit=3)
    assert len(first) == 3 and cursor is not None
    hot = read_answers(db, cursor)
    assert hot["unique_violations"] and hot["schema_violations"] and hot["explain"]["path"] == "index"
    assert "errors" not in hot["graphql"] and hot["graphql"]["data"]["_count"] == 40 // 5 + 1  # with the merged "dup"
    assert col.set_tier(tier) == tier and col.metadata()["index_state"] == {
        "idx_n": "dropped", "uidx_email": "dropped"}
    assert read_answers(db, cursor) == hot     # the first read brought the collection back
    assert col.tier == "hot"
    warm_jobs = [j for j in db.rebuild_status("User") if j["reason"] == "warm"]
    assert len(warm_jobs) == (1 if large else 0)   # large: rebuilt by the throttled job
    # GraphQL as the first read after demotion, too
    col.set_tier(tier)
    assert read_answers(db, cursor)["graphql"] == hot["graphql"]
    db.close()


@pytest.mark.parametrize("tier", ["warm", "cold"])
@pytest.mark.parametrize("size", ["small", "large"])
def test_writes_on_a_warm_or_cold_collection_follow_the_hot_rules(tier, size):
    large = size == "large"
    db = tiered_db(index_sync_build_docs=10 if large else 5_000, driven=False, docs=40)
    col = db.collection("User")
    col.set_tier(tier)
    # the unique index is rebuilt for the check even when its rebuild is throttled: the
    # duplicate a hot collection refuses is refused here, before any rebuild step ran
    with pytest.raises(ostracon.ConflictError, match="u39@x.org"):
        col.create({"name": "late", "email": "u39@x.org"})
    with pytest.raises(ostracon.SchemaValidationError):
        col.create({"email": "new@x.org"})
    # only the unique index was finished for the check; the other one rebuilds throttled
    assert {i["name"]: i["state"] for i in col.indexes()} == {
        "idx_n": "building" if large else "ready", "uidx_email": "ready"}
    col.patch("dup", {"n": 2})                 # a merged duplicate never blocks other edits
    col.create({"name": "new", "email": "new@x.org", "n": 4}, id="new")
    assert col.tier == "hot" and col.get("new")["email"] == "new@x.org"
    assert [v["ids"] for v in col.unique_violations()] == [["dup", "u001"]]
    db.close()


@pytest.mark.parametrize("tier", ["hot", "warm", "cold"])
def test_a_merge_into_a_warm_or_cold_collection_reports_a_duplicate_like_a_hot_one(tier):
    dbs = [ostracon.open(identity=Identity.from_seed(bytes([n]) * 32), clock=lambda: 1_700_000_000_000,
                         random_bytes=DeterministicRandom(f"dup-{n}")) for n in (1, 2)]
    a, b = dbs
    for db in dbs:
        db.collection("users").create_index("email", unique=True)
    a.collection("users").create({"email": "x@y.org"}, id="ua")
    b.collection("users").create({"email": "x@y.org"}, id="ub")
    b.collection("users").set_tier(tier)
    _, cursor = b.changes()
    a.flush(), b.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    events, _ = b.changes(after=cursor)
    assert [(e.id, [v["rule"] for v in e.violations]) for e in events] == [("ua", ["unique"])]
    assert [v["ids"] for v in b.collection("users").unique_violations()] == [["ua", "ub"]]
    a.close(), b.close()
