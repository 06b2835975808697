"""Reading documents through a Collection (db/collection.py): get, scan, count, time travel,
history and blame."""

import pytest

from db_helpers import ID_A, ID_B, open_db, user
from ostracon import ClosedError, NotFoundError, ValidationError
from ostracon.core import cid as cidlib


def test_get_missing_and_get_many(col):
    col.create({"a": 1}, id="x")
    assert col.get("nope") is None
    got = col.get_many(["x", "nope", "x"])
    assert got[0]["a"] == 1 and got[1] is None and got[2]["_id"] == "x"


def test_get_returns_a_copy(col):
    col.create({"tags": ["a"], "meta": {"k": 1}}, id="x")
    doc = col.get("x")
    doc["tags"].append("b")
    doc["meta"]["k"] = 2
    assert col.get("x")["tags"] == ["a"] and col.get("x")["meta"] == {"k": 1}


def test_values_round_trip_through_the_api(col):
    value = {"big": 2**100, "neg": -(2**70), "bytes": b"\x00\xff", "f": 1.5, "u": "日本 👩‍💻",
             "nested": {"z": [1, {"y": None}], "a": True}}
    col.create(value, id="v")
    doc = col.get("v")
    assert {k: doc[k] for k in value} == value
    assert list(doc["nested"]) == ["a", "z"]


def test_closed_collection_count_raises():
    # count() checks the database is open like every other method.
    d = open_db()
    c = d.collection("t")
    d.close()
    with pytest.raises(ClosedError):
        c.count()


# ----------------------------------------------------------------------------- scan

def test_scan_prefix_distinguishes_doc1_from_doc10(col):
    for i in [1, 2, 10, 11, 100, 3]:
        col.create({"i": i}, id=f"doc{i}")
    col.create({}, id="doc")
    col.create({}, id="dob")
    docs, cur = col.scan(prefix="doc1")
    assert [d["_id"] for d in docs] == ["doc1", "doc10", "doc100", "doc11"] and cur is None
    docs, _ = col.scan(prefix="doc10")
    assert [d["_id"] for d in docs] == ["doc10", "doc100"]
    docs, _ = col.scan()
    assert [d["_id"] for d in docs] == ["dob", "doc", "doc1", "doc10", "doc100", "doc11", "doc2", "doc3"]


def test_scan_pages_with_after_and_limit(col):
    for i in range(7):
        col.create({"i": i}, id=f"k{i}")
    pages, cur = [], None
    while True:
        docs, cur = col.scan(after=cur, limit=3)
        pages.append([d["_id"] for d in docs])
        if cur is None:
            break
    assert pages == [["k0", "k1", "k2"], ["k3", "k4", "k5"], ["k6"]]
    docs, cur = col.scan(prefix="k", after="k4")
    assert [d["_id"] for d in docs] == ["k5", "k6"]
    for bad in (5, b"k1", ["k1"]):
        with pytest.raises(ValidationError):
            col.scan(after=bad)


def test_scan_is_stable_under_inserts(col):
    for i in range(0, 10, 2):
        col.create({}, id=f"k{i}")
    docs, cur = col.scan(limit=2)          # k0 k2
    assert [d["_id"] for d in docs] == ["k0", "k2"]
    col.create({}, id="k1")                # before the cursor: not repeated, not seen
    col.create({}, id="k3")                # after the cursor: seen
    col.create({}, id="k9")
    rest = []
    while cur is not None:
        docs, cur = col.scan(after=cur, limit=2)
        rest += [d["_id"] for d in docs]
    assert rest == ["k3", "k4", "k6", "k8", "k9"]


def test_scan_skips_deleted_and_validates(col):
    col.create({}, id="a")
    col.create({}, id="b")
    col.delete("a")
    assert [d["_id"] for d in col.scan()[0]] == ["b"]
    assert [d["_id"] for d in col.scan(include_deleted=True)[0]] == ["a", "b"]
    for bad in (dict(limit=0), dict(limit="3"), dict(prefix=5)):
        with pytest.raises(ValidationError):
            col.scan(**bad)


# ----------------------------------------------------------------------------- time travel, history

def test_time_travel(col):
    clock_cids = []
    col.create({"a": 1}, id="d")
    clock_cids.append(col.get("d")["_heads"][0])
    clock_cids.append(col.patch("d", {"a": 2, "b": 1}))
    clock_cids.append(col.patch("d", {}, unset=["a"]))
    col.delete("d")
    assert user(col.get("d", at=clock_cids[0])) == {"a": 1}
    assert user(col.get("d", at=clock_cids[1])) == {"a": 2, "b": 1}
    assert col.get("d", at=[clock_cids[2]])["_version"] == 3
    assert col.get("d", at=clock_cids[1])["_version"] == 2
    assert col.get("d") is None
    with pytest.raises(NotFoundError):
        col.get("d", at=cidlib.format_cid(cidlib.compute(b"unknown")))
    col.create({}, id="other")
    with pytest.raises(NotFoundError):
        col.get("d", at=col.get("other")["_heads"])
    with pytest.raises(ValidationError):
        col.get("d", at="garbage")
    with pytest.raises(ValidationError):
        col.get("d", at=[])
    for odd in (5, 1.5, {"x": 1}, {clock_cids[0]: 1}):   # not a CID nor a list of them
        with pytest.raises(ValidationError):
            col.get("d", at=odd)


def test_time_travel_with_concurrent_heads():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    ca, cb = a.collection("t"), b.collection("t")
    ca.create({"x": 0}, id="d")
    a.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    h_a = ca.patch("d", {"x": 1})
    h_b = cb.patch("d", {"y": 2})
    a.flush()
    b.flush()
    a.apply_blocks(b.blocks_since(a.version_vector()))
    assert sorted(ca.get("d")["_heads"]) == sorted([h_a, h_b])
    assert user(ca.get("d", at=[h_a, h_b])) == user(ca.get("d"))
    assert user(ca.get("d", at=h_b)) == {"x": 0, "y": 2}


def test_history_order_parents_and_signature_status(db, col):
    col.create({"a": 1}, id="d")
    col.patch("d", {"a": 2})
    col.increment("d", "n")
    hist = col.history("d")
    assert [h["height"] for h in hist] == [1, 2, 3]
    assert hist[0]["parents"] == [] and hist[1]["parents"] == [hist[0]["cid"]]
    assert hist[2]["parents"] == [hist[1]["cid"]]
    assert [h["seq"] for h in hist] == [1, 2, 3] and {h["actor"] for h in hist} == {ID_A.actor.hex()}
    assert hist[1]["ops"] == [["s", "a", 2]] and hist[2]["ops"] == [["i", "n", 1]]
    assert all(h["signature"]["status"] == "pending" for h in hist)
    db.flush()
    hist = col.history("d")
    assert all(h["signature"]["status"] == "verified" for h in hist)
    assert hist[0]["signature"]["signer"] == ID_A.actor.hex()


def test_blame(col):
    c1 = col.create({"a": 1, "b": 1}, id="d")
    first = col.get("d")["_heads"][0]
    c2 = col.patch("d", {"b": 2})
    c3 = col.increment("d", "n", 5)
    blame = col.blame("d")
    assert blame["a"]["cid"] == first and blame["b"]["cid"] == c2 and blame["n"]["cid"] == c3
    assert blame["a"]["actor"] == ID_A.actor.hex() and c1 == "d"


def test_blame_decodes_each_commit_once_not_once_per_field(col, monkeypatch):
    # A document of many fields written by one block (legal: a block holds up to 256 KiB, and a
    # member may send one) decoded that block per field: quadratic, minutes under the lock.
    from ostracon.core.replica import Replica
    col.create({f"f{i}": i for i in range(300)}, id="wide")
    c2 = col.patch("wide", {"f7": "again"})
    decoded = []
    real = Replica.change

    def counting(self, cid):
        decoded.append(cid)
        return real(self, cid)

    monkeypatch.setattr(Replica, "change", counting)
    blame = col.blame("wide")
    assert len(blame) == 300 and blame["f7"]["cid"] == c2
    assert len(decoded) <= 2, len(decoded)
