"""Secondary indexes: sorted structure, maintenance from changes, uniqueness (core.index)."""

import random

import pytest

from ostracon.core.errors import ConflictError, NotFoundError, ValidationError
from ostracon.core.query.index import BUILDING, DROPPED, READY, CollectionIndexes, IndexCatalog, SortedKeyList
from ostracon.core.query.keys import value_key


@pytest.mark.parametrize("seed", range(5))
def test_sorted_key_list_matches_a_plain_sorted_list(seed):
    rng = random.Random(seed)
    try:
        s = SortedKeyList(load=8)  # tiny chunks: exercise splits and empty chunks
        ref: list = []
        for _ in range(3000):
            x = rng.randint(0, 300)
            if rng.random() < 0.6 or not ref:
                s.add(x)
                ref.append(x)
                ref.sort()
            else:
                y = rng.choice(ref) if rng.random() < 0.8 else 1000
                assert s.remove(y) == (y in ref)
                if y in ref:
                    ref.remove(y)
            if rng.random() < 0.05:
                lo, hi = sorted(rng.randint(-5, 310) for _ in range(2))
                want = [v for v in ref if lo <= v < hi]
                assert list(s.irange(lo, hi)) == want
                assert s.slice_range(lo, hi) == want
                assert s.slice_range(lo, hi, 3) == want[:3]
                assert s.scan_from(lo, hi) == want and s.scan_from(lo, hi, 2) == want[:2]
                assert s.count_range(lo, hi) == len(want)
                assert s.count_range(hi, lo) == 0 and s.slice_range(hi + 1, lo) == []
        assert list(s) == ref and len(s) == len(ref)
    except AssertionError:
        print("seed", seed)
        raise


def docs():
    return [
        {"_id": "a", "email": "x@y", "n": 1, "city": "Oslo", "p": {"zip": "0150"}},
        {"_id": "b", "email": "z@y", "n": 2.0, "city": "Oslo"},
        {"_id": "c", "n": None, "city": "Rome"},
        {"_id": "d", "email": "q@y", "n": True, "city": "Rome", "p": {"zip": "00100"}},
    ]


def test_create_lookup_and_keys():
    ci = CollectionIndexes("people")
    i = ci.create_index("city", docs=docs())
    assert i.state == READY and i.name == "idx_city"
    assert i.lookup("Oslo") == ["a", "b"]
    assert i.lookup("Paris") == []
    n = ci.create_index("n", docs=docs())
    assert n.lookup(2) == ["b"] and n.lookup(1.0) == ["a"] and n.lookup(True) == ["d"]
    assert n.lookup(None) == ["c"]
    z = ci.create_index("p.zip", docs=docs())
    assert z.lookup(None) == ["b", "c"]  # missing nested path indexes as null
    comp = ci.create_index(["city", "n"], docs=docs())
    assert comp.lookup("Rome") == ["c", "d"] and comp.lookup("Rome", True) == ["d"]
    assert ci.create_index("city", docs=docs()) is i  # idempotent
    assert [x["name"] for x in ci.list_indexes()] == ["idx_city", "idx_n", "idx_p_zip", "idx_city__n"]
    with pytest.raises(ValidationError):
        ci.create_index("n", unique=True, name="idx_city")
    with pytest.raises(ValidationError):
        comp.lookup("Rome", 1, 2)
    ci.drop_index("idx_n")
    with pytest.raises(NotFoundError):
        ci.drop_index("idx_n")


@pytest.mark.parametrize("fields", ["_heads", "_deleted", "_id", "_secret", "", ["a", "a"],
                                    [f"f{i}" for i in range(9)], 3, ["a.", "b"], "\ud800", ["a", "b.\udfff"]])
def test_bad_index_definitions(fields):
    with pytest.raises(ValidationError):
        CollectionIndexes("c").create_index(fields)


def test_an_index_name_with_a_lone_surrogate_is_refused():
    with pytest.raises(ValidationError, match="surrogate"):
        CollectionIndexes("c").create_index("a", name="i\ud800")


def test_a_refused_index_leaves_flush_and_close_working(tmp_path):
    import ostracon
    db = ostracon.open(tmp_path / "db")
    t = db.collection("t")
    for bad in ({"fields": "a", "name": "\ud800"}, {"fields": "\ud800"}):
        with pytest.raises(ValidationError):
            t.create_index(**bad)
    t.create({"a": 1}, id="after")
    db.flush()
    db.close()
    with ostracon.open(tmp_path / "db") as again:
        assert again.collection("t").get("after")["a"] == 1 and again.collection("t").indexes() == []


def test_maintained_from_changes_including_tombstones():
    ci = CollectionIndexes("c")
    idx = ci.create_index("city", docs=[])
    ci.apply_change("a", None, {"_id": "a", "city": "Oslo"})
    ci.apply_change("b", None, {"_id": "b", "city": "Oslo"})
    ci.apply_change("a", {"_id": "a", "city": "Oslo"}, {"_id": "a", "city": "Rome"})
    assert idx.lookup("Oslo") == ["b"] and idx.lookup("Rome") == ["a"]
    ci.apply_change("b", None, {"_id": "b", "city": "Oslo", "_deleted": True})
    assert idx.lookup("Oslo") == []
    ci.apply_change("a", {"_id": "a"}, None)
    assert len(idx) == 0
    ci.apply_change("zzz", None, None)  # unknown doc, nothing to do
    # the old document passed in is not trusted: removal uses the indexed key
    ci.apply_change("e", None, {"_id": "e", "city": "Oslo"})
    ci.apply_change("e", {"_id": "e", "city": "WRONG"}, {"_id": "e", "city": "Bern"})
    assert idx.lookup("Oslo") == [] and idx.lookup("Bern") == ["e"]


def test_catalog_dispatches_by_collection():
    cat = IndexCatalog()
    a = cat.collection("a").create_index("x", docs=[])
    cat.on_change("a", "1", None, {"_id": "1", "x": 5})
    cat.on_change("b", "1", None, {"_id": "1", "x": 5})  # no indexes there: ignored
    assert a.lookup(5) == ["1"] and cat.collections() == ["a"]


def test_unique_local_write_conflicts():
    ci = CollectionIndexes("users")
    ci.create_index("email", unique=True, docs=docs())
    ci.check_unique({"_id": "new", "email": "fresh@y"})
    ci.check_unique({"_id": "a", "email": "x@y"})  # a document may keep its own value
    ci.check_unique({"_id": "new"})  # null/missing are not constrained
    with pytest.raises(ConflictError, match="uidx_email.*email='x@y'.*document a"):
        ci.check_unique({"_id": "new", "email": "x@y"})
    with pytest.raises(ConflictError):
        ci.check_unique({"email": "z@y"}, doc_id="other")
    # compound unique: only the full combination is constrained
    ci.create_index(["city", "n"], unique=True, docs=docs())
    ci.check_unique({"_id": "new", "city": "Oslo", "n": 3})
    with pytest.raises(ConflictError):
        ci.check_unique({"_id": "new", "city": "Oslo", "n": 2})  # 2 == 2.0


def test_unique_refused_on_existing_duplicates():
    d = docs() + [{"_id": "e", "city": "Oslo"}]
    with pytest.raises(ConflictError, match="cannot create unique index"):
        CollectionIndexes("c").create_index("city", unique=True, docs=d)
    ci = CollectionIndexes("c")
    ci.create_index("email", unique=True, docs=d + [{"_id": "f"}, {"_id": "g", "email": None}])


def test_remote_duplicates_are_reported_not_refused():
    ci = CollectionIndexes("users")
    ci.create_index("email", unique=True, docs=docs())
    assert ci.violations() == []
    # two replicas created the same email concurrently: the merge delivers both
    ci.apply_change("r1", None, {"_id": "r1", "email": "x@y"})
    ci.apply_change("r2", None, {"_id": "r2", "email": "x@y"})
    (v,) = ci.violations()
    assert v.index == "uidx_email" and v.values == ("x@y",) and v.doc_ids == ("a", "r1", "r2")
    ci.apply_change("a", None, {"_id": "a", "email": "other@y"})
    ci.apply_change("r1", None, None)
    assert ci.violations() == []


def test_drop_data_and_rebuild_states():
    ci = CollectionIndexes("c")
    idx = ci.create_index("city", docs=docs())
    ci.drop_data()
    assert idx.state == DROPPED and len(idx) == 0 and ci.usable() == []
    ci.apply_change("a", None, {"_id": "a", "city": "X"})  # dropped indexes are not maintained
    assert len(idx) == 0
    (again,) = ci.begin_rebuild()
    assert again is idx and idx.state == BUILDING
    ci.apply_change("a", None, {"_id": "a", "city": "X"})  # building indexes are maintained
    assert idx.lookup("X") == ["a"]
    pending = ci.create_index("n")  # no docs: must be built by a rebuild job
    assert pending.state == BUILDING


def test_range_bounds_cover_exact_key_prefixes():
    ci = CollectionIndexes("c")
    rng = random.Random(7)
    d = [{"_id": f"{i:03d}", "a": rng.choice([1, 2, "x", None]), "b": rng.randint(0, 3)}
         for i in range(200)]
    idx = ci.create_index(["a", "b"], docs=d)
    for a in [1, 2, "x", None]:
        p = value_key(a) if a is not None else (0, None)
        got = sorted(e[-1] for e in idx.entries.irange(p, p + (7,)))
        assert got == sorted(x["_id"] for x in d if x["a"] == a and type(x["a"]) is type(a))
        assert idx.count_ranges([(p, p + (7,))]) == len(got)
