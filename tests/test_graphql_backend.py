"""GraphQL as the seed writes it (db/graphql_backend.py, db/graphql.py): equality shorthand
in filters, collections without schemas, `_count`, upsert, `_commits(docID, cid, depth)`."""

import pytest

import ostracon
from ostracon import NotFoundError, ValidationError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.db.graphql_backend import walk_commits

ID = Identity.from_seed(bytes(range(32)))


@pytest.fixture
def db():
    t = [1_700_000_000_000]

    def clock():
        t[0] += 1
        return t[0]
    d = ostracon.open(identity=ID, clock=clock, random_bytes=DeterministicRandom(3))
    pages = d.collection("pages")
    pages.create({"ocrComplete": True, "n": 1}, id="a")
    pages.create({"ocrComplete": False, "n": 2}, id="b")
    yield d
    d.close()


def data(r):
    assert "errors" not in r, r
    return r["data"]


def test_the_seed_literal_runs_verbatim_without_any_schema(db):
    assert data(db.graphql("{ pages(filter: {ocrComplete: true}) { _docID } }")) == {"pages": [{"_docID": "a"}]}


def test_loose_collections_expose_fields_as_json_and_appear_when_created(db):
    r = data(db.graphql('{ pages(filter: {n: {_gt: 1}}, order: {n: "DESC"}) { _docID _version _doc } }'))
    assert r == {"pages": [{"_docID": "b", "_version": 1, "_doc": {"n": 2, "ocrComplete": False}}]}
    assert "errors" in db.graphql("{ scans { _docID } }")
    db.collection("scans").create({"f": "x"}, id="s")
    assert data(db.graphql("{ scans { _docID } }")) == {"scans": [{"_docID": "s"}]}
    made = data(db.graphql('mutation { create_scans(input: [{f: "y", k: [1, 2]}]) { _doc } }'))
    assert made == {"create_scans": [{"_doc": {"f": "y", "k": [1, 2]}}]}


def test_shorthand_in_typed_filters_logic_and_variables(db):
    db.define_schema("type Todo { title: String done: Boolean n: Int }")
    todos = db.collection("Todo")
    todos.create({"title": "x", "done": True, "n": 1}, id="t1")
    todos.create({"title": "y", "done": False, "n": 2}, id="t2")
    q = """query($f: TodoFilterArg, $d: Boolean, $blk: BooleanOperatorBlock) {
      a: Todo(filter: {done: true}) { title }
      b: Todo(filter: {_or: [{title: "y"}, {n: {_eq: 1}}], _not: {done: true}}) { title }
      c: Todo(filter: $f) { title }
      d: Todo(filter: {done: $d}) { title }
      e: Todo(filter: {done: $blk}) { title }
    }"""
    r = data(db.graphql(q, {"f": {"title": "x"}, "d": False, "blk": {"_eq": True}}))
    assert r == {"a": [{"title": "x"}], "b": [{"title": "y"}], "c": [{"title": "x"}],
                 "d": [{"title": "y"}], "e": [{"title": "x"}]}
    bad = db.graphql('{ Todo(filter: {done: "yes"}) { title } }')
    assert bad["errors"][0]["locations"]   # still validated, and errors point into the text


def test_count(db):
    db.define_schema("type Todo { done: Boolean }")
    db.collection("Todo").create({"done": True})
    r = data(db.graphql("{ all: _count(pages: {}) done: _count(pages: {filter: {ocrComplete: true}}) "
                        "t: _count(Todo: {filter: {done: false}}) }"))
    assert r == {"all": 2, "done": 1, "t": 0}
    assert "exactly one" in db.graphql("{ _count }")["errors"][0]["message"]


def test_upsert_updates_the_one_match_creates_otherwise_refuses_many(db):
    r = data(db.graphql("mutation { upsert_pages(filter: {n: 1}, create: {n: 1}, update: {n: 10}) { _docID _doc } }"))
    assert r["upsert_pages"] == [{"_docID": "a", "_doc": {"n": 10, "ocrComplete": True}}]
    r = data(db.graphql("mutation { upsert_pages(filter: {n: 7}, create: {n: 7}, update: {n: 0}) { _doc } }"))
    assert r["upsert_pages"] == [{"_doc": {"n": 7}}]
    before = db.state_hash()
    r = db.graphql("mutation { upsert_pages(filter: {_or: [{n: 7}, {n: 10}]}, create: {}, update: {n: 0}) { _docID } }")
    assert "more than one" in r["errors"][0]["message"] and db.state_hash() == before
    ro = db.graphql("mutation { upsert_pages(filter: {n: 7}, create: {}, update: {}) { _docID } }",
                    allow_mutations=False)
    assert ro["errors"][0]["message"] == "writes are disabled on this endpoint"


def test_commits_with_cid_depth_links_and_meta(db):
    pages = db.collection("pages")
    pages.patch("a", {"n": 3})
    with db.provenance({"stage": "ocr", "model": "m"}):
        pages.patch("a", {"n": 4})
    h = [c["cid"] for c in pages.history("a")]
    r = data(db.graphql('{ _commits(docID: "a") { cid height links { cid } meta } }'))["_commits"]
    assert [c["cid"] for c in r] == h and r[2]["links"] == [{"cid": h[1]}]
    assert r[2]["meta"] == {"model": "m", "stage": "ocr"} and r[0]["meta"] is None
    q = "query($c: String, $d: Int) { _commits(cid: $c, depth: $d) { cid } }"
    assert [c["cid"] for c in data(db.graphql(q, {"c": h[1], "d": 0}))["_commits"]] == [h[1]]
    assert [c["cid"] for c in data(db.graphql(q, {"c": h[2], "d": 1}))["_commits"]] == h[1:]
    assert [c["cid"] for c in data(db.graphql(q, {"c": h[2]}))["_commits"]] == h
    r = data(db.graphql('{ _commits(docID: "a", depth: 0) { cid } }'))["_commits"]
    assert [c["cid"] for c in r] == [h[2]]
    assert "needs docID" in db.graphql("{ _commits { cid } }")["errors"][0]["message"]


def test_walk_commits_rules():
    cs = [{"cid": "r", "links": []}, {"cid": "x", "links": ["r"]}, {"cid": "y", "links": ["r"]},
          {"cid": "m", "links": ["x", "y"]}]
    assert walk_commits(cs, None, None) == cs
    assert [c["cid"] for c in walk_commits(cs, None, 1)] == ["x", "y", "m"]
    assert [c["cid"] for c in walk_commits(cs, "x", 5)] == ["r", "x"]
    with pytest.raises(NotFoundError):
        walk_commits(cs, "nope", None)
    with pytest.raises(ValidationError):
        walk_commits(cs, None, -1)
