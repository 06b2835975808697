"""Merges never produce invalid documents, and wrong usage is refused (docs/MERGE.md).

Each test is a small input tried as a user would: replicas exchanged with
`apply_blocks(blocks_since(...))` after `flush()`.
"""

import pytest

import ostracon
from ostracon import ConflictError, NotFoundError, ValidationError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity

T0 = 1_700_000_000_000


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


def replica(n, clock=None):
    return ostracon.open(identity=Identity.from_seed(bytes([n]) * 32), clock=clock or Clock(),
                         random_bytes=DeterministicRandom(f"merge-{n}"))


def sync(a, b):
    """Both directions, after flushing both."""
    a.flush()
    b.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    a.apply_blocks(b.blocks_since(a.version_vector()))


NOTE = "type Note { title: String!, body: String, done: Boolean, n: Int @crdt(type: pncounter) }"


# ----------------------------------------------------------------------------- 1. delete vs edit

def test_delete_against_a_concurrent_edit_never_leaves_a_fragment():
    ca, cb = Clock(), Clock()
    a, b = replica(1, ca), replica(2, cb)
    for db in (a, b):
        db.define_schema(NOTE)
    a.collection("Note").create({"title": "t", "body": "b", "n": 0}, id="x")
    a.collection("Note").increment("x", "n", 5)
    sync(a, b)
    a.collection("Note").delete("x")
    cb.t += 10                                   # "a moment later", offline
    b.collection("Note").patch("x", {"done": True})
    b.collection("Note").increment("x", "n", 1)
    sync(a, b)
    assert a.state_hash() == b.state_hash()
    for db in (a, b):
        col = db.collection("Note")
        assert col.get("x") is None and col.count() == 0
        with pytest.raises(NotFoundError):
            col.patch("x", {"done": False})
        assert db.graphql("{ Note { title } }") == {"data": {"Note": []}}
        assert col.schema_violations() == []
        # History keeps the hidden edit; time travel shows it as its author saw it.
        edit = [c for c in col.history("x") if c["actor"] == b.actor]
        seen = col.get("x", at=edit[-1]["cid"])
        assert (seen["title"], seen["body"], seen["done"], seen["n"]) == ("t", "b", True, 6)


def test_a_stale_device_editing_before_the_delete_arrives_brings_nothing_back():
    a, b, fresh = replica(1), replica(2), replica(3)
    a.collection("notes").create({"title": "t", "n": 5}, id="x")
    sync(a, b)
    sync(a, fresh)                               # fresh has the note, not the delete
    a.collection("notes").delete("x")
    sync(a, b)
    fresh.collection("notes").patch("x", {"done": True})
    sync(fresh, b)
    sync(b, a)
    assert len({db.state_hash() for db in (a, b, fresh)}) == 1
    assert all(db.collection("notes").get("x") is None for db in (a, b, fresh))


def test_text_edits_concurrent_with_a_delete_are_hidden_too():
    a, b = replica(1), replica(2)
    notes = a.collection("notes")
    notes.create({"title": "t"}, id="x")
    notes.text("x", "body").insert(0, "hello")
    sync(a, b)
    a.collection("notes").delete("x")
    b.collection("notes").text("x", "body").insert(5, " world")
    sync(a, b)
    assert a.state_hash() == b.state_hash()
    assert a.collection("notes").get("x") is None and b.collection("notes").get("x") is None
    b.collection("notes").create({"title": "again"}, id="x")
    b.collection("notes").text("x", "body").insert(0, "new")
    sync(a, b)
    for db in (a, b):
        d = db.collection("notes").get("x")
        assert (d["title"], d["body"]) == ("again", "new")


def test_re_creating_after_the_delete_gives_a_fresh_document_everywhere():
    a, b = replica(1), replica(2)
    a.collection("notes").create({"title": "old", "n": 5}, id="x")
    sync(a, b)
    a.collection("notes").delete("x")
    sync(a, b)
    b.collection("notes").create({"title": "new"}, id="x")
    sync(a, b)
    for db in (a, b):
        d = db.collection("notes").get("x")
        assert {k: v for k, v in d.items() if k[0] != "_"} == {"title": "new"}
        assert set(db.collection("notes").blame("x")) == {"title"}


# ----------------------------------------------------------------------------- 2. unique keys

def test_a_merged_unique_duplicate_is_reported_and_never_freezes_the_documents():
    a, b = replica(1), replica(2)
    for db in (a, b):
        db.collection("users").create_index("email", unique=True)
    a.collection("users").create({"email": "x@y.org", "n": 0}, id="ua")
    b.collection("users").create({"email": "x@y.org", "n": 0}, id="ub")
    sync(a, b)
    for db in (a, b):
        users = db.collection("users")
        assert users.unique_violations() == [{"index": "uidx_email", "fields": ["email"],
                                              "values": ["x@y.org"], "ids": ["ua", "ub"]}]
        users.patch("ua", {"name": "A"})         # unrelated edits go through
        users.increment("ub", "n", 1)
        users.update("ua", {**users.get("ua"), "name": "AA"})
        with pytest.raises(ConflictError):        # a new duplicate is still refused
            users.create({"email": "x@y.org"})
    a.collection("users").patch("ua", {"email": "a@y.org"})
    sync(a, b)
    assert a.collection("users").unique_violations() == [] == b.collection("users").unique_violations()


def test_the_merge_that_makes_a_duplicate_says_so_on_the_change_feed():
    a, b = replica(1), replica(2)
    for db in (a, b):
        db.collection("users").create_index("email", unique=True)
    a.collection("users").create({"email": "x@y.org"}, id="ua")
    b.collection("users").create({"email": "x@y.org"}, id="ub")
    _, cursor = b.changes()
    b.flush()
    a.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    events, _ = b.changes(after=cursor)
    assert [e.id for e in events] == ["ua"]
    assert [v["rule"] for v in events[0].violations] == ["unique"]
    assert events[0].to_dict()["violations"][0]["rule"] == "unique"


# ----------------------------------------------------------------------------- 3. increment

@pytest.mark.parametrize("value", ["text", True, [1], {"a": 1}, None, b"\x00"])
def test_increment_on_a_non_number_is_refused_and_writes_nothing(value):
    db = replica(1)
    col = db.collection("c")
    col.create({"f": value}, id="d")
    before = (db.state_hash(), col.get("d")["_version"], len(col.history("d")))
    with pytest.raises(ValidationError, match="not a number"):
        col.increment("d", "f", 1)
    assert (db.state_hash(), col.get("d")["_version"], len(col.history("d"))) == before
    col.increment("d", "missing", 2)             # absent: starts from 0
    assert col.get("d")["missing"] == 2


# ----------------------------------------------------------------------------- 4. dots

@pytest.mark.parametrize("call", [
    lambda c: c.create({"content.type": "text/html"}),
    lambda c: c.patch("d", {"prefs.theme": "dark"}),
    lambda c: c.update("d", {"a.b": 1}),
    lambda c: c.create({"meta": {"x.y": 1}}),
    lambda c: c.create({"list": [{"x.y": 1}]}),
    lambda c: c.patch("d", {}, unset=["prefs.theme"]),
    lambda c: c.increment("d", "stats.n", 1),
])
def test_dots_in_field_names_are_refused_at_write(call):
    db = replica(1)
    col = db.collection("c")
    col.create({"prefs": {"theme": "light"}}, id="d")
    before = db.state_hash()
    with pytest.raises(ValidationError, match=r"'\.'"):
        call(col)
    assert db.state_hash() == before


@pytest.mark.parametrize("call", [
    lambda c: c.create({"$odd": 1}),
    lambda c: c.patch("d", {"$set": {"x": 1}}),
    lambda c: c.update("d", {"$inc": 1}),
    lambda c: c.increment("d", "$n", 1),
])
def test_top_level_dollar_field_names_are_refused_at_write(call):
    # A filter naming such a field would be refused as Mongo syntax: what is stored must be
    # addressable. Nested `$` keys are data (the map is addressed as a whole).
    db = replica(1)
    col = db.collection("c")
    col.create({"prefs": {"$theme": "light"}}, id="d")
    before = db.state_hash()
    with pytest.raises(ValidationError, match=r"'\$'"):
        call(col)
    assert db.state_hash() == before
    assert col.get("d")["prefs"] == {"$theme": "light"}


def test_a_dot_is_always_a_path_in_queries_and_indexes():
    db = replica(1)
    col = db.collection("c")
    col.create({"content": {"type": "text/html"}}, id="d")
    assert [d["_id"] for d in col.find({"content.type": "text/html"})] == ["d"]
    col.create_index("content.type")
    assert col.explain({"content.type": "text/html"})["path"] == "index"
    assert [d["_id"] for d in col.find({"content.type": "text/html"})] == ["d"]


# ----------------------------------------------------------------------------- 5. metadata

def test_read_modify_write_round_trips():
    db = replica(1)
    col = db.collection("c")
    doc_id = col.create({"title": "t", "n": 1})
    doc = col.get(doc_id)
    assert doc["_collection"] == "c" and doc["_id"] == doc_id
    doc["title"] = "changed"
    col.update(doc_id, doc)
    col.patch(doc_id, col.get(doc_id))
    got = col.get(doc_id)
    assert {k: v for k, v in got.items() if k[0] != "_"} == {"title": "changed", "n": 1}
    assert got["_version"] == 3
    copy = db.collection("other")
    with pytest.raises(ValidationError, match="_collection"):
        copy.create(col.get(doc_id))
    assert copy.create({k: v for k, v in col.get(doc_id).items() if k != "_collection"}) == doc_id


# ----------------------------------------------------------------------------- 7. wrong usage

@pytest.mark.parametrize("flt", [{"done": {"$eq": True}}, {"$or": [{"done": True}]}, {"done": {"$in": [True]}},
                                 {"a.$b": 1}])
def test_mongo_style_operators_are_refused(flt):
    db = replica(1)
    db.collection("c").create({"done": True})
    with pytest.raises(ValidationError, match=r"\$"):
        db.collection("c").find(flt)


def test_misspelt_open_options_are_refused_with_a_hint():
    with pytest.raises(ValidationError, match="did you mean 'feed_retention'"):
        ostracon.open(feed_retension=5)
    with pytest.raises(ValidationError):
        ostracon.open(sink_batch_ops=2**64)


# ----------------------------------------------------------------------------- schema violations

def test_a_merge_that_breaks_the_schema_is_reported_and_stays_editable():
    a, b = replica(1), replica(2)
    a.define_schema("type Note { title: String!, done: Boolean }")
    b.collection("Note").create({"done": False}, id="x")   # b has no schema yet
    sync(a, b)
    col = a.collection("Note")
    assert [v["id"] for v in col.schema_violations()] == ["x"]
    assert col.schema_violations()[0]["field"] == "Note.title"
    col.patch("x", {"title": "fixed"})
    assert col.schema_violations() == []


# ----------------------------------------------------------------------------- tiers

def test_reads_answer_the_same_on_a_warm_collection_as_on_a_hot_one():
    db = replica(1)
    col = db.collection("users")
    col.create_index("email", unique=True)
    col.create_index("n")
    for i in range(20):
        col.create({"email": f"u{i}@x.org", "n": i % 3}, id=f"u{i:02d}")
    other = replica(2)
    other.collection("users").create({"email": "u1@x.org"}, id="dup")
    other.flush()
    db.apply_blocks(other.blocks_since({}))

    def answers():
        return (col.find({"n": 1}), col.count(), col.explain({"n": 1}), col.indexes(),
                col.unique_violations(), col.schema_violations(),
                db.graphql("{ users(filter: {n: {_eq: 1}}) { email } }"))
    hot = answers()
    col.set_tier("warm")
    assert answers() == hot
    col.set_tier("warm")
    assert col.unique_violations() == hot[4] and col.indexes() == hot[3]
