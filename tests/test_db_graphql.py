"""db.graphql(): the generated API over real collections (queries, mutations, _commits),
spec-shaped errors without tracebacks, and `ostracon serve`'s POST /graphql handler."""

import asyncio
import json

import pytest

import ostracon
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity

T0 = 1_700_000_000_000
ID_A = Identity.from_seed(bytes(range(32)))

SDL = """
type Todo {
  title: String!
  done: Boolean
  votes: Int @crdt(type: pncounter)
  author: Author
  blob: Blob
}
type Author { name: String }
"""


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        self.t += 1
        return self.t


def open_db(path=None, **kw):
    return ostracon.open(path, identity=ID_A, clock=Clock(), random_bytes=DeterministicRandom(7), **kw)


@pytest.fixture
def db():
    d = open_db()
    d.define_schema(SDL)
    todo = d.collection("Todo")
    for i, (title, done) in enumerate([("write", False), ("test", True), ("ship", False)]):
        todo.create({"title": title, "done": done, "votes": i, "author": {"name": f"a{i}"}},
                    id=f"t{i}")
    yield d
    d.close()


def no_traceback(r):
    text = json.dumps(r, default=str)
    assert "Traceback" not in text and "File \"" not in text


def test_queries(db):
    r = db.graphql('{ Todo(order: {title: ASC}) { _docID title done votes author { name } } }')
    assert r == {"data": {"Todo": [
        {"_docID": "t2", "title": "ship", "done": False, "votes": 2, "author": {"name": "a2"}},
        {"_docID": "t1", "title": "test", "done": True, "votes": 1, "author": {"name": "a1"}},
        {"_docID": "t0", "title": "write", "done": False, "votes": 0, "author": {"name": "a0"}}]}}
    r = db.graphql('query($d: Boolean) { Todo(filter: {done: {_eq: $d}}, order: [{votes: DESC}]) '
                   '{ title } }', {"d": False})
    assert r == {"data": {"Todo": [{"title": "ship"}, {"title": "write"}]}}
    r = db.graphql('{ Todo(filter: {_or: [{title: {_like: "w%"}}, {author: {name: {_eq: "a1"}}}]},'
                   ' limit: 1, offset: 1) { _docID } }')
    assert r == {"data": {"Todo": [{"_docID": "t1"}]}}
    r = db.graphql('{ Todo(docID: ["t1", "t2"], filter: {votes: {_gt: 1}}) { _docID _version _deleted } }')
    assert r == {"data": {"Todo": [{"_docID": "t2", "_version": 1, "_deleted": False}]}}
    r = db.graphql('{ Todo(filter: {_docID: {_eq: "t0"}}) { _heads _created _updated } }')
    doc = r["data"]["Todo"][0]
    assert doc["_heads"] == db.collection("Todo").get("t0")["_heads"] and doc["_created"] > T0


def test_time_travel_with_cid(db):
    todo = db.collection("Todo")
    first = todo.get("t0")["_heads"][0]
    todo.patch("t0", {"title": "rewritten"})
    r = db.graphql('query($c: String) { Todo(cid: $c) { title } }', {"c": first})
    assert r == {"data": {"Todo": [{"title": "write"}]}}
    r = db.graphql('query($c: String) { Todo(cid: $c, filter: {title: {_eq: "zzz"}}) { title } }',
                   {"c": first})
    assert r == {"data": {"Todo": []}}
    r = db.graphql('{ Todo(cid: "not-a-cid") { title } }')
    assert r["data"] == {"Todo": None} and "not a CID" in r["errors"][0]["message"]


def test_mutations(db):
    r = db.graphql('mutation { create_Todo(input: [{title: "new", blob: "00ff"}, {title: "two"}]) '
                   '{ _docID title blob done } }')
    made = r["data"]["create_Todo"]
    assert [m["title"] for m in made] == ["new", "two"] and made[0]["blob"] == "00ff"
    todo = db.collection("Todo")
    assert todo.get(made[0]["_docID"])["blob"] == b"\x00\xff"
    r = db.graphql('mutation { update_Todo(filter: {done: {_ne: true}}, input: {done: true}) '
                   '{ _docID done _version } }')
    assert {d["_docID"] for d in r["data"]["update_Todo"]} == {"t0", "t2", made[0]["_docID"],
                                                               made[1]["_docID"]}
    assert all(d["done"] for d in r["data"]["update_Todo"])
    r = db.graphql('mutation($ids: [ID!]) { delete_Todo(docID: $ids) { _docID _deleted } }',
                   {"ids": ["t1"]})
    assert r == {"data": {"delete_Todo": [{"_docID": "t1", "_deleted": True}]}}
    assert todo.get("t1") is None
    assert len(db.graphql("{ Todo { _docID } }")["data"]["Todo"]) == 4


def test_commits(db):
    todo = db.collection("Todo")
    todo.patch("t0", {"done": True})
    q = '{ _commits(docID: "t0") { cid height links { cid } actor signature schemaVersionId } }'
    commits = db.graphql(q)["data"]["_commits"]
    hist = todo.history("t0")
    assert [c["cid"] for c in commits] == [h["cid"] for h in hist]
    assert [c["height"] for c in commits] == [1, 2]
    assert commits[0]["links"] == [] and commits[1]["links"] == [{"cid": commits[0]["cid"]}]
    assert {c["actor"] for c in commits} == {ID_A.actor.hex()}
    assert all(c["signature"] is None for c in commits)          # not sealed before a flush
    assert {c["schemaVersionId"] for c in commits} == {db.schema_versions()["Todo"]}
    db.flush()
    commits = db.graphql(q)["data"]["_commits"]
    sig = commits[0]["signature"]
    assert len(sig) == 128 and all(c["signature"] == sig for c in commits)  # one seal per batch
    assert db.graphql('{ _commits(docID: "nope") { cid } }') == {"data": {"_commits": []}}


def test_errors_follow_the_spec(db):
    r = db.graphql('mutation { create_Todo(input: [{done: true}]) { title } }')
    assert r["data"] == {"create_Todo": None}
    assert r["errors"][0]["message"] == "SchemaValidationError: Todo.title: required (String!) but missing"
    assert r["errors"][0]["path"] == ["create_Todo"] and r["errors"][0]["locations"]
    r = db.graphql("{ Todo { nope } }")
    assert "data" not in r and "nope" in r["errors"][0]["message"]
    r = db.graphql("{ Todo { title ")
    assert "data" not in r and "Syntax Error" in r["errors"][0]["message"]
    db.collection("Todo").create_index("title", unique=True)
    r = db.graphql('mutation { create_Todo(input: [{title: "write"}]) { title } }')
    assert r["errors"][0]["message"].startswith("ConflictError:")
    r = db.graphql('mutation { update_Todo(input: {done: true}) { title } }')
    assert "give docID or filter" in r["errors"][0]["message"]
    no_traceback(r)


def test_unexpected_failures_are_hidden(db, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("secret /etc/passwd")
    monkeypatch.setattr(ostracon.Collection, "find", boom)
    r = db.graphql("{ Todo { title } }")
    assert r["errors"][0]["message"] == "internal error" and "passwd" not in json.dumps(r)
    no_traceback(r)


def test_read_only_endpoint_and_no_schema(db):
    before = db.state_hash()
    r = db.graphql('mutation { create_Todo(input: [{title: "x"}]) { title } }', allow_mutations=False)
    assert r["errors"][0]["message"] == "writes are disabled on this endpoint"
    assert db.state_hash() == before
    assert db.graphql("{ Todo { title } }", allow_mutations=False)["data"]["Todo"]
    empty = open_db()
    r = empty.graphql("{ Todo { title } }")
    assert r["errors"][0]["message"] == "Cannot query field 'Todo' on type 'Query'."
    empty.close()


@pytest.mark.parametrize("flt", ["false", "0", "[]", '""', '[["title", "write"]]', '"title"'])
def test_a_json_filter_that_is_not_an_object_is_refused_not_widened(db, flt):
    # Collections without a schema take `filter: JSON`; a value that is not an object must be
    # a ValidationError, never "no filter" (which would delete every document) or a dict() guess.
    pages = db.collection("pages")
    for i in range(3):
        pages.create({"title": f"p{i}"}, id=f"p{i}")
    before = db.state_hash()
    for q in (f"{{ pages(filter: {flt}) {{ _docID }} }}",
              f"{{ _count(pages: {{filter: {flt}}}) }}",
              f"mutation {{ delete_pages(filter: {flt}) {{ _docID }} }}",
              f"mutation {{ update_pages(filter: {flt}, input: {{done: true}}) {{ _docID }} }}",
              f"mutation {{ upsert_pages(filter: {flt}, create: {{}}, update: {{done: true}}) {{ _docID }} }}"):
        r = db.graphql(q)
        assert r["errors"][0]["message"].startswith("ValidationError: "), (q, r)
        no_traceback(r)
    assert db.state_hash() == before and pages.count() == 3


def test_a_check_sees_the_schema_the_request_runs_against_and_can_stop_it(db):
    seen = []
    r = db.graphql("{ Todo(order: {title: ASC}, limit: 1) { title } }", check=seen.append)
    assert r == {"data": {"Todo": [{"title": "ship"}]}}
    assert len(seen) == 1 and seen[0] is db.graphql_schema()

    def refuse(schema):
        raise ostracon.ValidationError("refused")
    before = db.state_hash()
    with pytest.raises(ostracon.ValidationError, match="refused"):
        db.graphql('mutation { create_Todo(input: [{title: "x"}]) { title } }', check=refuse)
    assert db.state_hash() == before     # the request did not run
    seen.clear()
    empty = open_db()
    assert "errors" in empty.graphql("{ Todo { title } }", check=seen.append) and len(seen) == 1
    empty.close()


def test_a_new_schema_version_regenerates_the_api(db):
    assert "errors" in db.graphql("{ Todo { note } }")
    db.define_schema(SDL.replace("done: Boolean", "done: Boolean note: String"))
    assert db.graphql("{ Todo(limit: 1) { note } }") == {"data": {"Todo": [{"note": None}]}}


# ------------------------------------------------------------------ ostracon serve: POST /graphql

def _request(method, body):
    from ostracon.relay.http import HttpRequest
    return HttpRequest(method=method, target="/graphql", path="/graphql", query={}, headers=(),
                       body=body)


def test_serve_graphql_handler(tmp_path):
    from ostracon.serve import _graphql_handler
    path = tmp_path / "db"
    # The directory's own identity (identity.key), as `ostracon serve --graphql-writes` uses it.
    d = ostracon.open(str(path), clock=Clock(), random_bytes=DeterministicRandom(7))
    d.define_schema(SDL)
    d.collection("Todo").create({"title": "served"}, id="s1")
    d.close()

    handle, gdb = _graphql_handler(str(path), False)
    try:
        resp = asyncio.run(handle(_request("POST", json.dumps({"query": "{ Todo { _docID title } }"}).encode())))
        assert resp.status == 200 and resp.content_type == "application/json"
        assert json.loads(resp.body) == {"data": {"Todo": [{"_docID": "s1", "title": "served"}]}}
        resp = asyncio.run(handle(_request("POST", json.dumps(
            {"query": 'mutation { create_Todo(input: [{title: "x"}]) { title } }'}).encode())))
        assert json.loads(resp.body)["errors"][0]["message"] == "writes are disabled on this endpoint"
        resp = asyncio.run(handle(_request("POST", b"{not json")))
        assert resp.status == 400 and "bad request" in json.loads(resp.body)["errors"][0]["message"]
        assert asyncio.run(handle(_request("GET", b""))).status == 405
    finally:
        gdb.close()

    handle, gdb = _graphql_handler(str(path), True)
    try:
        q = {"query": "mutation($t: String) { create_Todo(input: [{title: $t}]) { title } }",
             "variables": {"t": "written"}}
        resp = asyncio.run(handle(_request("POST", json.dumps(q).encode())))
        assert json.loads(resp.body) == {"data": {"create_Todo": [{"title": "written"}]}}
    finally:
        gdb.close()
    d = open_db(path=path)
    assert sorted(x["title"] for x in d.collection("Todo").find()) == ["served", "written"]
    d.close()
