"""SDL parsing, validation, canonical version ids, the version DAG and lenses (core.schema)."""

import pytest

from ostracon.core import cid, encoding
from ostracon.core.errors import NotFoundError, ValidationError
from ostracon.core.query.schema import LensNotFoundError, SchemaValidationError, schema_from_canonical
from ostracon.core.query.schema_registry import SchemaRegistry
from ostracon.core.query.sdl import parse_sdl

SDL = '''
"""A todo item."""
type Todo {
  title: String!
  done: Boolean,
  votes: Int @crdt(type: pncounter)
  likes: Int @crdt(type: pcounter)
  score: Float
  tags: [String!]
  matrix: [[Int]]
  author: Author   # embedded map
  email: String @index(unique: true)
  slug: ID @index
  avatar: Blob
  raw: Bytes
  extra: JSON
  due: DateTime
}

type Author { name: String! address: Address }
type Address { city: String }
'''


@pytest.fixture()
def reg():
    r = SchemaRegistry()
    r.register(SDL)
    return r


def test_parse_and_model(reg):
    todo = reg.get("Todo")
    f = {x.name: x for x in todo.fields}
    assert str(f["title"].type) == "String!" and f["title"].type.required
    assert f["votes"].crdt == "pncounter" and f["likes"].crdt == "pcounter"
    assert str(f["tags"].type) == "[String!]" and str(f["matrix"].type) == "[[Int]]"
    assert f["email"].index == "unique" and f["slug"].index == "index"
    assert todo.indexes() == [("email", True), ("slug", False)]
    assert [t.name for t in todo.embedded] == ["Address", "Author"]
    assert reg.names() == ["Address", "Author", "Todo"]
    # SDL round trip
    assert reg.register(todo.to_sdl())["Todo"] is todo


def test_validate_accepts_good_documents(reg):
    todo = reg.get("Todo")
    todo.validate({"title": "t", "done": None, "votes": 10 ** 30, "score": 1, "tags": ["a"],
                   "matrix": [[1, None], None], "author": {"name": "A", "address": {"city": None}},
                   "avatar": b"\x00", "extra": {"any": [1, "x", None, {"y": 2.5}]},
                   "due": "2024-05-01T10:20:30.123456789Z", "_id": "x", "_version": 3})
    for due in ["2024-05-01", "2024-05-01T10:20", "2024-05-01T10:20:30+02:00", "2024-05-01 10:20:30"]:
        todo.validate({"title": "t", "due": due})
    todo.validate({"done": True}, partial=True)  # a patch need not carry required fields


@pytest.mark.parametrize("doc, field", [
    ({"title": 3}, "Todo.title"),
    ({}, "Todo.title"),
    ({"title": None}, "Todo.title"),
    ({"title": "t", "done": 1}, "Todo.done"),
    ({"title": "t", "votes": True}, "Todo.votes"),
    ({"title": "t", "votes": 1.5}, "Todo.votes"),
    ({"title": "t", "score": "1"}, "Todo.score"),
    ({"title": "t", "score": float("nan")}, "Todo.score"),
    ({"title": "t", "tags": "a"}, "Todo.tags"),
    ({"title": "t", "tags": ["a", None]}, "Todo.tags[1]"),
    ({"title": "t", "matrix": [[1, "x"]]}, "Todo.matrix[0][1]"),
    ({"title": "t", "author": {}}, "Todo.author.name"),
    ({"title": "t", "author": "bob"}, "Todo.author"),
    ({"title": "t", "author": {"name": "a", "address": {"zip": 1}}}, "Todo.author.address.zip"),
    ({"title": "t", "avatar": "AA=="}, "Todo.avatar"),
    ({"title": "t", "extra": {1: 2}}, "Todo.extra"),
    ({"title": "t", "extra": {"s": {1, 2}}}, "Todo.extra"),
    ({"title": "t", "due": "yesterday"}, "Todo.due"),
    ({"title": "t", "due": "2024-13-01"}, "Todo.due"),
    ({"title": "t", "nope": 1}, "Todo.nope"),
    ({"title": "t", "_secret": 1}, "Todo._secret"),
    ({"title": "t", "author": {"name": "a", "_id": "x"}}, "Todo.author._id"),
])
def test_validate_names_the_field(reg, doc, field):
    with pytest.raises(SchemaValidationError) as e:
        reg.get("Todo").validate(doc)
    assert e.value.field == field and field in str(e.value)


def test_patch_cannot_null_a_required_field(reg):
    with pytest.raises(SchemaValidationError, match="Todo.title"):
        reg.get("Todo").validate({"title": None}, partial=True)


def test_validate_increment(reg):
    todo = reg.get("Todo")
    todo.validate_increment("votes", -3)
    todo.validate_increment("likes", 2)
    for fld, by, frag in [("likes", -1, "only grows"), ("votes", 1.5, "must be a Int"),
                          ("votes", True, "must be"), ("score", 1, "not a counter"),
                          ("nope", 1, "not a field")]:
        with pytest.raises(SchemaValidationError, match=frag):
            todo.validate_increment(fld, by)


@pytest.mark.parametrize("sdl, frag", [
    ("type T { a: Strin }", "unknown type Strin"),
    ("type T { a: String @crdt(type: pncounter) }", "needs Int or Float"),
    ("type T { a: [Int] @crdt(type: pcounter) }", "needs Int or Float"),
    ("type T { a: Int @crdt(type: gcounter) }", "unknown crdt type"),
    ("type T { a: Int @crdt }", "@crdt takes exactly"),
    ("type T { a: Int @unique }", "unknown directive @unique"),
    ("type T { a: Int @index(unique: 1) }", "@index takes only"),
    ("type T { _a: Int }", "reserved"),
    ("type T { a: Int a: String }", "declared twice"),
    ("type T { a: Int } type T { b: Int }", "defined twice"),
    ("type String { a: Int }", "built-in scalar"),
    ("interface T { a: Int }", "only `type Name"),
    ("type T @x { a: Int }", "type-level directives"),
    ("type T { a(x: Int): Int }", "field arguments"),
    ("type T { a: Int", "expected name"),
    ("type T { a: [Int }", "expected ]"),
    ("type T { a: Int ~ }", "unexpected character"),
    ("", "defines no type"),
    ("type T { a: " + "[" * 20 + "Int" + "]" * 20 + " }", "nested deeper"),
    # Past int()'s 4,300-digit default (an interpreter setting, not a rule of the SDL).
    ("type T { a: Int @index(unique: " + "9" * 5000 + ") }", "number literal longer than"),
    ("type T { a: Int @crdt(type: [1e999]) }", "number literal .* not finite"),
])
def test_bad_sdl(sdl, frag):
    with pytest.raises(ValidationError, match=frag):
        SchemaRegistry().register(sdl)


def test_sdl_error_has_a_line_number():
    with pytest.raises(ValidationError, match="SDL line 3"):
        parse_sdl("type T {\n a: Int\n b: Int ~\n}")


def test_version_id_is_the_cid_of_canonical_bytes(reg):
    todo = reg.get("Todo")
    data = todo.canonical_bytes()
    assert encoding.decode(data) == todo.canonical()  # canonical form (sorted, shortest)
    assert todo.version_id == cid.format_cid(cid.compute(data))
    assert todo.version_id.startswith("bagaqiera")  # CIDv1 messagepack sha2-256 base32
    assert schema_from_canonical(data) == todo
    # field order and formatting in the SDL do not matter
    other = SchemaRegistry()
    shuffled = SDL.replace("title: String!", "").replace("type Todo {", "type Todo {\n title:   String !")
    assert other.register(shuffled)["Todo"].version_id == todo.version_id
    for bad in [b"\x00", data[:-1], encoding.encode({**todo.canonical(), "v": 2}),
                encoding.encode({"v": 1})]:
        with pytest.raises(ValidationError):
            schema_from_canonical(bad)


def test_version_dag_history_and_heads(reg):
    v1 = reg.get("Todo")
    assert reg.register(SDL)["Todo"] is v1  # unchanged: no new version
    sdl2 = SDL.replace("title: String!", "name: String!")
    v2 = reg.register(sdl2)["Todo"]
    assert v2.parents == (v1.version_id,) and v2.height == 2
    v3 = reg.register(SDL)["Todo"]  # back to the old shape: a new version, not a cycle
    assert v3.version_id != v1.version_id and v3.parents == (v2.version_id,)
    assert [s.version_id for s in reg.history("Todo")] == [v1.version_id, v2.version_id, v3.version_id]
    assert reg.get("Todo") is v3
    # Author did not change: one version only
    assert len(reg.history("Author")) == 1
    with pytest.raises(NotFoundError):
        reg.history("Nope")
    with pytest.raises(NotFoundError):
        reg.version("bnope")


def test_concurrent_versions_merge_deterministically():
    a, b = SchemaRegistry(), SchemaRegistry()
    base = a.register("type T { x: Int }")["T"]
    b.add(schema_from_canonical(base.canonical_bytes()))
    va = a.register("type T { x: Int y: String }")["T"]
    vb = b.register("type T { x: Int z: String }")["T"]
    for r, other in ((a, vb), (b, va)):
        r.add(schema_from_canonical(other.canonical_bytes()))
    assert a.get("T").version_id == b.get("T").version_id == max(va.version_id, vb.version_id)
    merged = a.register("type T { x: Int y: String z: String }")["T"]
    assert merged.parents == tuple(sorted([va.version_id, vb.version_id]))  # merges both
    assert a.get("T") is merged and merged.height == 3
    with pytest.raises(NotFoundError):
        SchemaRegistry().add(schema_from_canonical(va.canonical_bytes()))  # parent unknown


def test_lenses_translate_along_the_path(reg):
    v1 = reg.get("Todo")
    v2 = reg.register(SDL.replace("title: String!", "name: String!"))["Todo"]
    v3 = reg.register(SDL.replace("title: String!", "name: String!").replace("done: Boolean,", "state: String"))["Todo"]

    def rename(d):
        d["name"] = d.pop("title", None)
        return d

    def done_to_state(d):
        d["state"] = "done" if d.pop("done", False) else "open"
        return d

    reg.register_lens(v1.version_id, v2.version_id, rename,
                      reverse=lambda d: {**{k: v for k, v in d.items() if k != "name"}, "title": d["name"]})
    reg.register_lens(v2.version_id, v3.version_id, done_to_state)
    old = {"_id": "x", "_version": 4, "title": "hi", "done": True}
    assert reg.read(old, v1.version_id) == {"_id": "x", "_version": 4, "name": "hi", "state": "done"}
    assert old == {"_id": "x", "_version": 4, "title": "hi", "done": True}  # input untouched
    assert reg.lens_path(v1.version_id, v3.version_id) == [v1.version_id, v2.version_id, v3.version_id]
    assert reg.migrate({"name": "n"}, v2.version_id, v1.version_id) == {"title": "n"}
    assert reg.read(old, None) is old
    with pytest.raises(LensNotFoundError):
        reg.migrate({"state": "open", "name": "x"}, v3.version_id, v1.version_id)
    # a lens that produces an invalid document is caught, naming the field
    v4 = reg.register(SDL.replace("title: String!", "name: String!").replace("done: Boolean,", "state: Int"))["Todo"]
    reg.register_lens(v3.version_id, v4.version_id, lambda d: d)
    with pytest.raises(SchemaValidationError, match="Todo.state"):
        reg.read(old, v1.version_id)
    reg.register_lens(v3.version_id, v4.version_id, lambda d: 1 / 0)
    with pytest.raises(ValidationError, match="ZeroDivisionError"):
        reg.migrate({"name": "x"}, v3.version_id, v4.version_id)
    with pytest.raises(ValidationError):
        reg.register_lens(v1.version_id, reg.get("Author").version_id, rename)
    with pytest.raises(ValidationError):
        reg.register_lens(v1.version_id, v1.version_id, rename)
