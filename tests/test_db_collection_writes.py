"""Writing documents through a Collection (db/collection_writes.py): create, update, patch,
delete, increment, what they refuse, and compare-and-set."""

import pytest

from db_helpers import ID_A, ID_B, T0, Clock, open_db, user
from ostracon import ConflictError, NotFoundError, ValidationError
from ostracon.core import cid as cidlib


def test_create_and_get(db, col):
    doc_id = col.create({"title": "a", "done": False})
    assert isinstance(doc_id, str) and len(doc_id) == 26
    doc = col.get(doc_id)
    assert doc["title"] == "a" and doc["done"] is False
    assert doc["_id"] == doc_id and doc["_version"] == 1 and doc["_deleted"] is False
    assert doc["_created"] == doc["_updated"] == T0
    assert len(doc["_heads"]) == 1 and cidlib.parse_cid(doc["_heads"][0])


def test_generated_ids_sort_by_creation_time():
    clock = Clock()
    d = open_db(clock=clock)
    ids = []
    for i in range(5):
        clock.t += 1
        ids.append(d.collection("c").create({"i": i}))
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_create_with_explicit_id_and_conflict(col):
    assert col.create({"a": 1}, id="doc1") == "doc1"
    with pytest.raises(ConflictError):
        col.create({"a": 2}, id="doc1")
    assert col.get("doc1")["a"] == 1


def test_create_over_a_deleted_document_resurrects_it_with_only_the_new_fields(col):
    col.create({"a": 1, "b": 2}, id="d")
    col.delete("d")
    col.create({"b": 3}, id="d")
    doc = col.get("d")
    assert {k: v for k, v in doc.items() if not k.startswith("_")} == {"b": 3}
    assert doc["_version"] == 3


# ----------------------------------------------------------------------------- update, patch, delete, increment

def test_update_replaces_patch_merges(col):
    col.create({"a": 1, "b": 2}, id="d")
    cid1 = col.update("d", {"a": 5, "c": 3})
    assert cidlib.parse_cid(cid1)
    assert user(col.get("d")) == {"a": 5, "c": 3}
    col.patch("d", {"b": 9}, unset=["a"])
    assert user(col.get("d")) == {"b": 9, "c": 3}
    with pytest.raises(ValidationError):
        col.patch("d", {"b": 1}, unset=["b"])


def test_update_of_a_document_wider_than_one_block_of_removals_succeeds_atomically():
    # Fields gathered by many small writes (here another member's) need more unset ops than
    # one block holds: update() removes them in blocks of their own, as one atomic unit.
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    a.collection("notes").create({"title": "t"}, id="n1")
    a.flush()
    b.apply_blocks(a.blocks_since({}))
    wide = [f"f{i:04d}" + "x" * 250 for i in range(2_400)]    # ~620 KB of field names
    for k in range(0, len(wide), 600):
        b.collection("notes").patch("n1", dict.fromkeys(wide[k:k + 600], 1))
    b.flush()
    a.apply_blocks(b.blocks_since(a.version_vector()))
    notes = a.collection("notes")
    version = notes.get("n1")["_version"]
    with pytest.raises(ValidationError, match="block may hold"):   # refused after the removals
        notes.update("n1", {"title": "x" * 300_000})
    assert notes.get("n1")["_version"] == version and len(user(notes.get("n1"))) == 2_401
    notes.update("n1", {"title": "fresh"})
    assert user(notes.get("n1")) == {"title": "fresh"} and notes.get("n1")["_version"] > version + 1
    a.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    assert b.state_hash() == a.state_hash() and user(b.collection("notes").get("n1")) == {"title": "fresh"}
    # Inside send_many the removals join the caller's batch.
    for k in range(0, len(wide), 600):
        b.collection("notes").patch("n1", dict.fromkeys(wide[k:k + 600], 2))
    b.send_many([{"collection": "notes", "kind": "update", "id": "n1", "doc": {"title": "again"}}])
    assert user(b.collection("notes").get("n1")) == {"title": "again"}


def test_delete_and_increment(col):
    col.create({"n": 1}, id="d")
    col.increment("d", "n")
    col.increment("d", "n", by=2.5)
    col.increment("d", "m", by=-3)
    assert user(col.get("d")) == {"n": 4.5, "m": -3}
    col.delete("d")
    assert col.get("d") is None
    assert col.get("d", include_deleted=True)["_deleted"] is True
    assert col.count() == 0 and col.count(include_deleted=True) == 1


@pytest.mark.parametrize("by", [float("nan"), float("inf"), "1", None, True, 2**63])
def test_increment_validation(col, by):
    col.create({}, id="d")
    with pytest.raises(ValidationError):
        col.increment("d", "n", by=by)


@pytest.mark.parametrize("call", [
    lambda c: c.update("missing", {"a": 1}), lambda c: c.patch("missing", {"a": 1}),
    lambda c: c.delete("missing"), lambda c: c.increment("missing", "n"),
    lambda c: c.history("missing"), lambda c: c.blame("missing"),
    lambda c: c.update("gone", {"a": 1}), lambda c: c.patch("gone", {}), lambda c: c.delete("gone"),
    lambda c: c.increment("gone", "n"), lambda c: c.blame("gone"),
])
def test_not_found(col, call):
    col.create({"a": 1}, id="gone")
    col.delete("gone")
    with pytest.raises(NotFoundError):
        call(col)


@pytest.mark.parametrize("call", [
    lambda c: c.create({"_x": 1}), lambda c: c.patch("d", {"_x": True}), lambda c: c.patch("d", {}, unset=["_heads"]),
    lambda c: c.update("d", {"ok": 1, "_id": "other"}), lambda c: c.update("d", {"ok": 1, "_collection": "x"}),
    lambda c: c.increment("d", "_n"), lambda c: c.create({"_id": "x"}, id="y"),
])
def test_reserved_names_are_refused(db, col, call):
    col.create({"a": 1}, id="d")
    before = db.state_hash()
    with pytest.raises(ValidationError):
        call(col)
    assert db.state_hash() == before and col.get("d")["_version"] == 1


@pytest.mark.parametrize("doc", [
    [1], "x", None, {1: "a"}, {"a": float("nan")}, {"a": {1, 2}}, {"a": object()}, {"": 1},
    {"x" * 257: 1}, {"\ud800": 1}, {"a": "\udc00"}, {"a": {"b": float("inf")}},
])
def test_invalid_documents_are_refused_and_leave_no_trace(db, col, doc):
    before = db.state_hash()
    with pytest.raises(ValidationError):
        col.create(doc, id="d")
    assert db.state_hash() == before and col.get("d") is None and db.heads() == []
    col.create({"ok": 1}, id="d")  # the id is still free
    assert col.get("d")["_version"] == 1


def test_oversized_document_is_refused_and_leaves_no_trace(db, col):
    with pytest.raises(ValidationError):
        col.create({"blob": b"x" * (300 * 1024)}, id="big")
    assert col.get("big") is None and db.heads() == []


@pytest.mark.parametrize("doc_id", ["", "a\x00", "x" * 257, 5])
def test_bad_doc_ids(col, doc_id):
    with pytest.raises(ValidationError):
        col.create({}, id=doc_id)


# ----------------------------------------------------------------------------- compare-and-set

def test_if_version(db, col):
    col.create({"a": 1}, id="d")
    col.patch("d", {"a": 2}, if_version=1)
    before, events = db.state_hash(), db.changes()[0]
    for call in (lambda: col.patch("d", {"a": 3}, if_version=1), lambda: col.update("d", {"a": 3}, if_version=5),
                 lambda: col.delete("d", if_version=1)):
        with pytest.raises(ConflictError):
            call()
    assert db.state_hash() == before and db.changes()[0] == events
    assert col.get("d")["a"] == 2 and col.get("d")["_version"] == 2
    col.delete("d", if_version=2)
    assert col.get("d") is None


def test_if_heads(db, col):
    col.create({"a": 1}, id="d")
    heads = col.get("d")["_heads"]
    col.patch("d", {"a": 2}, if_heads=heads)
    before = db.state_hash()
    with pytest.raises(ConflictError):
        col.patch("d", {"a": 3}, if_heads=heads)        # stale
    assert db.state_hash() == before
    now = col.get("d")["_heads"]
    col.update("d", {"a": 4}, if_heads=now[0])           # a single CID string works too
    assert col.get("d")["a"] == 4
    with pytest.raises(ValidationError):
        col.patch("d", {"a": 5}, if_heads=["not a cid"])


def test_where(db, col):
    col.create({"done": False, "n": 1}, id="d")
    col.patch("d", {"done": True}, where={"done": {"_eq": False}})
    before = db.state_hash()
    with pytest.raises(ConflictError):
        col.patch("d", {"n": 2}, where={"done": {"_eq": False}})
    with pytest.raises(ConflictError):
        col.delete("d", where={"n": {"_gt": 5}})
    assert db.state_hash() == before
    col.delete("d", where={"_and": [{"done": {"_eq": True}}, {"n": {"_le": 1}}]})
    assert col.get("d") is None
