"""Schemas wired into the Database: validated writes naming the field, the version id in
every block, persistence across reopen, the version DAG, and lenses on read (and on write)."""

import pytest

import ostracon
from ostracon import NotFoundError, ReadOnlyError, ValidationError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.db import LensNotFoundError, SchemaValidationError

T0 = 1_700_000_000_000
ID_A = Identity.from_seed(bytes(range(32)))
ID_B = Identity.from_seed(bytes(range(1, 33)))

V1 = "type Todo { name: String! done: Boolean votes: Int @crdt(type: pncounter) }"
V2 = "type Todo { title: String! done: Boolean votes: Int @crdt(type: pncounter) }"


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        self.t += 1
        return self.t


def open_db(identity=ID_A, path=None, seed=1, **kw):
    return ostracon.open(path, identity=identity, clock=Clock(), random_bytes=DeterministicRandom(seed),
                         **kw)


@pytest.fixture
def db():
    d = open_db()
    yield d
    d.close()


def rename_up(doc):
    doc["title"] = doc.pop("name")
    return doc


def rename_down(doc):
    doc["name"] = doc.pop("title")
    return doc


def test_writes_are_validated_naming_the_field(db):
    ids = db.define_schema(V1)
    assert list(ids) == ["Todo"] and ids["Todo"].startswith("b")
    todo = db.collection("Todo")
    assert todo.schema.version_id == ids["Todo"]
    doc_id = todo.create({"name": "a", "done": False})
    before = db.state_hash(), db.version_vector(), db.pending_writes
    bad = [
        (lambda: todo.create({"done": True}), "Todo.name"),
        (lambda: todo.create({"name": 3}), "Todo.name"),
        (lambda: todo.create({"name": "x", "colour": "red"}), "Todo.colour"),
        (lambda: todo.update(doc_id, {"done": True}), "Todo.name"),
        (lambda: todo.patch(doc_id, {"done": "yes"}), "Todo.done"),
        (lambda: todo.patch(doc_id, {"name": None}), "Todo.name"),
        (lambda: todo.patch(doc_id, {}, unset=["name"]), "Todo.name"),
        (lambda: todo.increment(doc_id, "done"), "Todo.done"),
        (lambda: todo.increment(doc_id, "votes", 1.5), "Todo.votes"),
    ]
    for attempt, field in bad:
        with pytest.raises(SchemaValidationError) as e:
            attempt()
        assert e.value.field == field and field in str(e.value)
        assert isinstance(e.value, ValidationError)
        assert (db.state_hash(), db.version_vector(), db.pending_writes) == before
    todo.patch(doc_id, {"done": True}, unset=["votes"])
    todo.increment(doc_id, "votes", 2)
    assert todo.get(doc_id)["votes"] == 2
    # collections without a schema stay schemaless
    db.collection("free").create({"anything": [1, {"x": None}]})
    assert db.collection("free").schema is None


def test_blocks_carry_the_schema_version(db):
    free = db.collection("Todo").create({"name": "before any schema"})
    v1 = db.define_schema(V1)["Todo"]
    todo = db.collection("Todo")
    d = todo.create({"name": "a"})
    todo.patch(d, {"done": True})
    todo.delete(d)
    assert [c["schema"] for c in todo.history(d)] == [v1, v1, v1]
    assert todo.history(free)[0]["schema"] is None
    # ... and on the wire: another replica sees the same field in the blocks
    db.flush()
    other = open_db(ID_B, seed=2)
    other.apply_blocks(db.blocks_since({}))
    assert [c["schema"] for c in other.collection("Todo").history(d)] == [v1, v1, v1]
    other.close()


def test_versions_form_a_dag_and_history(db):
    v1 = db.define_schema(V1)["Todo"]
    assert db.define_schema(V1)["Todo"] == v1          # same shape: no new version
    v2 = db.define_schema(V2)["Todo"]
    v3 = db.define_schema(V2.replace("}", " note: String }"))["Todo"]
    hist = db.schema_history("Todo")
    assert [h["version_id"] for h in hist] == [v1, v2, v3]
    assert hist[0]["parents"] == [] and hist[1]["parents"] == [v1] and hist[2]["parents"] == [v2]
    assert [h["height"] for h in hist] == [1, 2, 3]
    assert "title: String!" in hist[1]["sdl"]
    assert db.schema_versions() == {"Todo": v3}
    with pytest.raises(NotFoundError):
        db.schema_history("Nope")


def test_lenses_translate_old_documents_on_read(db):
    v1 = db.define_schema(V1)["Todo"]
    todo = db.collection("Todo")
    old = todo.create({"name": "old one", "done": False}, id="old")
    v2 = db.define_schema(V2)["Todo"]
    # no lens yet: the stored shape is returned as is
    assert todo.get(old)["name"] == "old one"
    db.register_lens(v1, v2, rename_up, reverse=rename_down)
    assert todo.get(old)["title"] == "old one" and "name" not in todo.get(old)
    new = todo.create({"title": "new one"}, id="new")
    with pytest.raises(SchemaValidationError):
        todo.create({"name": "old shape"})           # writes use the current version
    assert [d["_id"] for d in todo.find({"title": {"_like": "%one"}})] == ["new", "old"]
    todo.create_index("title")
    assert todo.explain({"title": "old one"})["path"] == "index"
    assert [d["_id"] for d in todo.find({"title": "old one"})] == ["old"]
    assert [d["_id"] for d in todo.scan()[0]] == ["new", "old"]
    assert todo.scan()[0][1]["title"] == "old one"
    # a partial write to an old document rewrites it into the current shape first
    todo.patch(old, {"done": True})
    assert todo.history(old)[-1]["schema"] == v2
    got = todo.get(old)
    assert got["title"] == "old one" and got["done"] is True and "name" not in got
    assert "name" not in db.replica.doc("Todo", old).user_fields()
    assert [d["_id"] for d in todo.find({"title": "old one"})] == ["old"]
    # the old blocks are still valid history
    first = todo.history(old)[0]
    assert first["schema"] == v1 and first["ops"][1] == ["s", "name", "old one"]
    assert todo.get(old, at=first["cid"])["title"] == "old one"   # read through the lens too
    assert new in [d["_id"] for d in todo.find({"done": {"_ne": True}})]


def test_increment_on_an_old_document_migrates_and_counts(db):
    v1 = db.define_schema(V1)["Todo"]
    todo = db.collection("Todo")
    d = todo.create({"name": "n", "votes": 1})
    todo.increment(d, "votes", 2)
    v2 = db.define_schema(V2)["Todo"]
    db.register_lens(v1, v2, rename_up)
    todo.increment(d, "votes", 4)
    assert todo.get(d)["votes"] == 7 and todo.get(d)["title"] == "n"
    assert todo.history(d)[-1]["schema"] == v2


def test_unknown_lens_endpoints_and_bad_schemas(db):
    v1 = db.define_schema(V1)["Todo"]
    with pytest.raises(NotFoundError):
        db.register_lens(v1, "b" + "a" * 60, rename_up)
    with pytest.raises(ValidationError):
        db.define_schema("type Todo { x: Strin }")
    with pytest.raises(ValidationError):
        db.collection("todos").set_schema(V1)       # the SDL must define this collection's type
    assert db.collection("Other").set_schema("type Other { a: Int }").startswith("b")
    with pytest.raises(LensNotFoundError):
        db.schemas.lens_path(v1, db.schema_versions()["Other"])


def test_index_directives_create_indexes(db):
    db.define_schema("type User { email: String @index(unique: true) team: String @index }")
    users = db.collection("User")
    assert {(i["name"], i["unique"]) for i in users.indexes()} == {("uidx_email", True),
                                                                  ("idx_team", False)}
    users.create({"email": "a@x", "team": "t"})
    with pytest.raises(ostracon.ConflictError):
        users.create({"email": "a@x"})
    assert users.explain({"team": "t"})["path"] == "index"


def test_embedded_types_validate(db):
    db.define_schema("type Book { title: String! author: Author } type Author { name: String! }")
    books = db.collection("Book")
    books.create({"title": "t", "author": {"name": "n"}})
    with pytest.raises(SchemaValidationError) as e:
        books.create({"title": "t", "author": {}})
    assert e.value.field == "Book.author.name"


def test_schemas_survive_reopen(tmp_path):
    path = tmp_path / "db"
    db = open_db(path=path)
    v1 = db.define_schema(V1)["Todo"]
    d = db.collection("Todo").create({"name": "kept"}, id="d")
    v2 = db.define_schema(V2)["Todo"]
    db.close()
    db = open_db(path=path)
    assert [h["version_id"] for h in db.schema_history("Todo")] == [v1, v2]
    todo = db.collection("Todo")
    assert todo.schema.version_id == v2
    with pytest.raises(SchemaValidationError):
        todo.create({"name": "v1 shape"})
    assert todo.get(d)["name"] == "kept"               # lenses are code: not persisted
    db.register_lens(v1, v2, rename_up)
    assert todo.get(d)["title"] == "kept"
    db.close()
    ro = open_db(path=path, read_only=True)
    assert ro.schema_versions() == {"Todo": v2}
    with pytest.raises(ReadOnlyError):  # a schema version is a write (a block and meta)
        ro.define_schema(V1)
    assert ro.schema_versions() == {"Todo": v2}
    ro.close()


def test_unknown_version_from_a_peer_is_read_as_is():
    a, b = open_db(ID_A, seed=1), open_db(ID_B, seed=2)
    a.define_schema(V1)
    a.collection("Todo").create({"name": "x"}, id="d")
    a.flush()
    b.define_schema(V2)          # a different history: concurrent versions, no lens
    b.apply_blocks(a.blocks_since({}))
    assert b.collection("Todo").get("d")["name"] == "x"
    b.flush()
    a.apply_blocks(b.blocks_since(a.version_vector()))
    assert a.state_hash() == b.state_hash()
    # Versions travel with the data: both replicas now hold both, as a DAG with two leaves.
    assert {v["version_id"] for v in a.schema_history("Todo")} == {v["version_id"] for v in b.schema_history("Todo")}
    assert len(a.schema_history("Todo")) == 2
    a.close(), b.close()


def test_schema_versions_replicate_as_signed_blocks_and_merge_as_a_dag():
    a, b = open_db(ID_A, seed=1), open_db(ID_B, seed=2)
    v1 = a.define_schema(V1)["Todo"]
    a.collection("Todo").create({"name": "x"}, id="d")
    a.flush()
    b.apply_blocks(a.blocks_since({}))
    assert b.collection("Todo").schema.version_id == v1        # b never called define_schema
    assert b.graphql("{ Todo { name } }") == {"data": {"Todo": [{"name": "x"}]}}
    with pytest.raises(ostracon.SchemaValidationError):
        b.collection("Todo").create({"done": True})            # validated on b too
    # Concurrent next versions on both sides, then a merge version that links both leaves.
    va = a.define_schema(V1.replace("}", " tags: [String] }"))["Todo"]
    vb = b.define_schema(V1.replace("}", " note: String }"))["Todo"]
    a.flush(), b.flush()
    a.apply_blocks(b.blocks_since(a.version_vector()))
    b.apply_blocks(a.blocks_since(b.version_vector()))
    assert {v["version_id"] for v in a.schema_history("Todo")} == {v1, va, vb}
    merged = a.define_schema(V1.replace("}", " tags: [String] note: String }"))["Todo"]
    parents = {v["version_id"]: v["parents"] for v in a.schema_history("Todo")}
    assert sorted(parents[merged]) == sorted([va, vb])
    a.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    assert b.collection("Todo").schema.version_id == merged
    with pytest.raises(ValidationError, match="reserved"):
        a.collection("ostracon.schemas")
    assert "ostracon.schemas" not in a.collections()
    a.close(), b.close()


def test_lens_chains_compose_across_additive_steps():
    db = open_db(ID_A, seed=1)
    v1 = db.define_schema("type Page { page: Int, text: String }")["Page"]
    pages = db.collection("Page")
    pages.create({"page": 1, "text": "one"}, id="p1")
    v2 = db.define_schema("type Page { page: Int, text: String, model: String }")["Page"]  # additive: no lens
    pages.create({"page": 2, "text": "two", "model": "m"}, id="p2")
    v3 = db.define_schema("type Page { page: Int, body: String, model: String }")["Page"]

    def rename(d):
        d = dict(d)
        if "text" in d:
            d["body"] = d.pop("text")
        return d
    db.register_lens(v2, v3, rename)
    assert len({v1, v2, v3}) == 3
    assert {k: v for k, v in pages.get("p1").items() if k[0] != "_"} == {"page": 1, "body": "one"}
    assert sorted(d["_id"] for d in pages.find({"body": {"_like": "%o%"}})) == ["p1", "p2"]
    assert pages.schema_violations() == []
    pages.patch("p1", {"model": "x"})          # written back in the v3 shape
    assert pages.history("p1")[-1]["schema"] == v3
    assert {k: v for k, v in pages.get("p1").items() if k[0] != "_"} == {"page": 1, "body": "one", "model": "x"}
    # A step that is not additive (a field removed or retyped) still needs a lens.
    db.define_schema("type Page { page: String, body: String, model: String }")
    with pytest.raises(ostracon.LensNotFoundError):
        db.schemas.lens_path(v3, db.collection("Page").schema.version_id)


# ------------------------------------------------------------------ declarative lenses replicate

PAGE_V1 = "type Page { page: Int, text: String }"
PAGE_V2 = "type Page { page: Int, text: String, model: String }"        # additive: no lens
PAGE_V3 = "type Page { page: Int, body: String, model: String }"
RENAME = [{"op": "rename", "from": "text", "to": "body"}, {"op": "default", "field": "model", "value": "none"}]


def user_fields(doc):
    return {k: v for k, v in doc.items() if k[0] != "_"}


def sync(a, b):
    a.flush(), b.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    a.apply_blocks(b.blocks_since(a.version_vector()))


def test_a_declarative_lens_replicates_and_a_peer_that_never_saw_it_reads_through_it(tmp_path):
    a, b = open_db(ID_A, path=tmp_path / "a", seed=1), open_db(ID_B, seed=2)
    v1 = a.define_schema(PAGE_V1)["Page"]
    a.collection("Page").create({"page": 1, "text": "one"}, id="p1")
    v2 = a.define_schema(PAGE_V2)["Page"]
    a.collection("Page").create({"page": 2, "text": "two", "model": "m"}, id="p2")
    v3 = a.define_schema(PAGE_V3)["Page"]
    a.register_lens(v2, v3, RENAME)
    b.collection("Page").create_index("body")      # b's index must see the lens's output
    sync(a, b)
    assert a.state_hash() == b.state_hash()
    assert b.collection("Page").schema.version_id == v3
    for db in (a, b):
        pages = db.collection("Page")
        assert user_fields(pages.get("p1")) == {"page": 1, "body": "one", "model": "none"}   # v1 → v2 → v3
        assert user_fields(pages.get("p2")) == {"page": 2, "body": "two", "model": "m"}
        assert sorted(d["_id"] for d in pages.find({"body": {"_eq": "one"}})) == ["p1"]
        assert pages.schema_violations() == []
        assert db.graphql('{ Page(filter: {body: {_eq: "two"}}) { body model } }') == {
            "data": {"Page": [{"body": "two", "model": "m"}]}}
    assert b.collection("Page").explain({"body": {"_eq": "one"}})["path"] == "index"
    b.collection("Page").patch("p1", {"page": 10})  # written back in the v3 shape on b
    sync(a, b)
    assert user_fields(a.collection("Page").get("p1")) == {"page": 10, "body": "one", "model": "none"}
    a.close()
    a = open_db(ID_A, path=tmp_path / "a", seed=1)   # the lens is data: it survives a reopen
    assert user_fields(a.collection("Page").get("p2"))["body"] == "two"
    assert a.schemas.declared_lens(v2, v3).to_list() == RENAME
    with pytest.raises(ValidationError, match="declared"):
        a.register_lens(v2, v3, lambda d: d)          # a local function cannot override it
    assert v1 != v2
    a.close(), b.close()


def test_concurrent_lenses_for_one_step_converge_to_the_same_reads():
    a, b = open_db(ID_A, seed=1), open_db(ID_B, seed=2)
    v1 = a.define_schema(PAGE_V1)["Page"]
    a.collection("Page").create({"page": 1, "text": "one"}, id="p1")
    v3 = a.define_schema(PAGE_V3)["Page"]
    sync(a, b)
    a.register_lens(v1, v3, [{"op": "rename", "from": "text", "to": "body"}])
    b.register_lens(v1, v3, [{"op": "copy", "from": "text", "to": "body"}, {"op": "drop", "field": "text"},
                             {"op": "convert", "field": "page", "to": "String"}])
    sync(a, b)
    assert a.state_hash() == b.state_hash()
    assert a.collection("Page").get("p1") == b.collection("Page").get("p1")
    assert a.schemas.declared_lens(v1, v3) == b.schemas.declared_lens(v1, v3)


def test_a_retracted_lens_record_is_dropped_by_every_replica():
    # A member unsets the replicated lens record (a later write wins over it). A replica that
    # adopted the lens before and one that merges everything at once must read alike.
    from ostracon.db.schemas import LENS_PREFIX, SCHEMA_COLLECTION

    a, b, c = open_db(ID_A, seed=1), open_db(ID_B, seed=2), open_db(Identity.from_seed(b"\x03" * 32), seed=3)
    v1 = a.define_schema(PAGE_V1)["Page"]
    a.collection("Page").create({"page": 1, "text": "one"}, id="p1")
    v3 = a.define_schema(PAGE_V3)["Page"]
    a.register_lens(v1, v3, [{"op": "rename", "from": "text", "to": "body"}])
    sync(a, b)
    assert user_fields(b.collection("Page").get("p1")) == {"page": 1, "body": "one"}
    b.collection("Page").create_index("text")
    with a._engine.lock:   # a hostile or future writer: no public call retracts a lens
        a._engine.write(SCHEMA_COLLECTION, v3, [("u", LENS_PREFIX + v1)])
    sync(a, b)
    sync(a, c)
    assert b.state_hash() == c.state_hash()
    assert b.schemas.declared_lens(v1, v3) is None and c.schemas.declared_lens(v1, v3) is None
    for db in (b, c):
        pages = db.collection("Page")
        assert user_fields(pages.get("p1")) == {"page": 1, "text": "one"}
        assert [d["_id"] for d in pages.find({"text": "one"})] == ["p1"]
    a.close(), b.close(), c.close()


def test_malformed_declarative_lenses_are_refused_before_anything_is_written(db):
    v1 = db.define_schema(PAGE_V1)["Page"]
    v3 = db.define_schema(PAGE_V3)["Page"]
    before = db.state_hash()
    for bad in ([], [{"op": "rename", "from": "text"}], [{"op": "eval", "field": "x"}],
                [{"op": "drop", "field": "a.b"}], [{"op": "convert", "field": "n", "to": "Date"}]):
        with pytest.raises(ValidationError):
            db.register_lens(v1, v3, bad)
    assert db.state_hash() == before


WIDE_V1 = "type Wide { a: String b: String c: String done: Boolean votes: Int @crdt(type: pncounter) }"
WIDE_V2 = "type Wide { x: String y: String z: String done: Boolean votes: Int @crdt(type: pncounter) }"


def _wide_old_document(db):
    """A document of schema v1 whose fields, each written by a block of its own, together
    outgrow one block; then v2 renames every one of them."""
    v1 = db.define_schema(WIDE_V1)["Wide"]
    wide = db.collection("Wide")
    big = {f: f * 120_000 for f in "abc"}   # ~360 KB of values: more than one block holds
    wide.create({"a": big["a"]}, id="w")
    wide.patch("w", {"b": big["b"]})
    wide.patch("w", {"c": big["c"]})
    v2 = db.define_schema(WIDE_V2)["Wide"]
    db.register_lens(v1, v2, lambda d: {{"a": "x", "b": "y", "c": "z"}.get(k, k): v for k, v in d.items()})
    return wide, v2, {"x": big["a"], "y": big["b"], "z": big["c"]}


@pytest.mark.parametrize("write", ["patch", "increment"])
def test_a_partial_write_to_a_wide_old_document_migrates_it_in_atomic_steps(db, write):
    wide, v2, big = _wide_old_document(db)
    before = wide.get("w")["_version"]
    if write == "patch":
        wide.patch("w", {"done": True})
        want = {**big, "done": True}
    else:
        wide.increment("w", "votes", 3)
        want = {**big, "votes": 3}
    got = wide.get("w")
    assert {k: v for k, v in got.items() if not k.startswith("_")} == want
    assert set(db.replica.doc("Wide", "w").user_fields()) == set(want)  # stored in the new shape
    assert got["_version"] > before + 1 and wide.history("w")[-1]["schema"] == v2


def test_a_refused_write_to_a_wide_old_document_leaves_it_as_it_was(db):
    wide, _, big = _wide_old_document(db)
    version, stored = wide.get("w")["_version"], set(db.replica.doc("Wide", "w").user_fields())
    with pytest.raises(ValidationError, match="block may hold"):   # refused after the migration steps
        wide.patch("w", {"done": True, "x": "q" * 300_000})
    assert wide.get("w")["_version"] == version and set(db.replica.doc("Wide", "w").user_fields()) == stored
    wide.patch("w", {"done": False})
    assert wide.get("w")["done"] is False and wide.get("w")["x"] == big["x"]


def test_inside_send_many_the_migration_steps_join_the_callers_batch(db):
    wide, v2, big = _wide_old_document(db)
    db.send_many([{"collection": "Wide", "kind": "patch", "id": "w", "doc": {"done": True}},
                  {"collection": "Wide", "kind": "create", "id": "w2", "doc": {"x": "new"}}])
    assert {k: v for k, v in wide.get("w").items() if not k.startswith("_")} == {**big, "done": True}
    assert wide.get("w2")["x"] == "new" and wide.history("w")[-1]["schema"] == v2
