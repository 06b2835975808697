"""The generated GraphQL API over a fake backend (ostracon.db.graphql)."""

import pytest

from ostracon.core.errors import ConflictError, NotFoundError, ValidationError
from ostracon.core.query.index import CollectionIndexes
from ostracon.core.query.planner import DictSource, execute
from ostracon.core.query.schema import SchemaRegistry
from ostracon.db.graphql import MAX_QUERY_DEPTH, GraphQLAPI

SDL = """
type Todo {
  title: String!
  done: Boolean
  votes: Int @crdt(type: pncounter)
  tags: [String]
  author: Author
  due: DateTime
  blob: Blob
  extra: JSON
}
type Author { name: String }
"""


class FakeBackend:
    """What the Database will provide, over DictSources and the real query planner."""

    def __init__(self):
        self.cols: dict[str, tuple[DictSource, CollectionIndexes]] = {}
        self.n = 0
        self.calls: list = []

    def col(self, name):
        if name not in self.cols:
            ci = CollectionIndexes(name)
            self.cols[name] = (DictSource(listener=ci.apply_change), ci)
        return self.cols[name]

    def find(self, collection, filter, order, limit, offset, cid):
        self.calls.append(("find", collection, filter, order, limit, offset, cid))
        if cid == "boom":
            raise RuntimeError("secret internals /etc/passwd")
        if cid is not None:
            raise NotFoundError(f"no commit {cid}")
        src, ci = self.col(collection)
        return execute(src, ci, filter, order, limit=limit, offset=offset).docs

    def create(self, collection, doc):
        src, ci = self.col(collection)
        self.n += 1
        d = {**doc, "_id": f"id{self.n:03d}", "_version": 1, "_created": 1_700_000_000_000 + self.n,
             "_updated": 1_700_000_000_000 + self.n, "_deleted": False, "_heads": [f"bh{self.n}"]}
        ci.check_unique(d)
        src.put(d)
        return d

    def update(self, collection, doc_id, fields):
        src, _ = self.col(collection)
        d = {**src.get(doc_id), **fields}
        d["_version"] += 1
        src.put(d)
        return d

    def delete(self, collection, doc_id):
        src, _ = self.col(collection)
        d = src.get(doc_id)
        src.delete(doc_id)
        return {**d, "_deleted": True}

    def commits(self, doc_id):
        if doc_id == "missing":
            raise NotFoundError("no such document")
        return [{"cid": "bafy1", "height": 1, "links": [], "actor": "ab" * 4, "signature": "sig"},
                {"cid": "bafy2", "height": 2, "links": ["bafy1"], "actor": "ab" * 4, "signature": None}]


@pytest.fixture()
def api():
    reg = SchemaRegistry()
    reg.register(SDL)
    backend = FakeBackend()
    return GraphQLAPI([reg.get("Todo")], backend), backend


def gql(api, q, variables=None):
    return api[0].execute(q, variables)


def test_create_query_filter_order(api):
    r = gql(api, """mutation { create_Todo(input: [
        {title: "b", done: false, votes: 3, tags: ["x"], author: {name: "Ann"}, due: "2024-01-02"},
        {title: "a", done: true, votes: 5, blob: "00ff", extra: {k: [1, "two", null]}}]) { _docID title } }""")
    assert r == {"data": {"create_Todo": [{"_docID": "id001", "title": "b"}, {"_docID": "id002", "title": "a"}]}}
    r = gql(api, "mutation($d: [TodoMutationInputArg!]!) { create_Todo(input: $d) { _docID } }",
            {"d": {"title": "c", "votes": 1}})  # a single object coerces to a list of one
    assert r["data"]["create_Todo"] == [{"_docID": "id003"}]
    r = gql(api, "{ Todo(order: {title: ASC}) { title votes blob extra author { name } _version _heads } }")
    assert r["data"]["Todo"] == [
        {"title": "a", "votes": 5, "blob": "00ff", "extra": {"k": [1, "two", None]}, "author": None,
         "_version": 1, "_heads": ["bh2"]},
        {"title": "b", "votes": 3, "blob": None, "extra": None, "author": {"name": "Ann"},
         "_version": 1, "_heads": ["bh1"]},
        {"title": "c", "votes": 1, "blob": None, "extra": None, "author": None,
         "_version": 1, "_heads": ["bh3"]}]
    r = gql(api, """{ Todo(filter: {votes: {_gt: 1}, _or: [{done: {_eq: true}}, {author: {name: {_like: "A%"}}}]},
                          order: [{votes: DESC}]) { title } }""")
    assert r == {"data": {"Todo": [{"title": "a"}, {"title": "b"}]}}
    r = gql(api, '{ Todo(filter: {done: {_eq: null}}, limit: 1, offset: 0) { title } }')
    assert r == {"data": {"Todo": [{"title": "c"}]}}
    r = gql(api, '{ Todo(docID: ["id002", "id003"], filter: {_not: {title: {_eq: "c"}}}) { _docID } }')
    assert r == {"data": {"Todo": [{"_docID": "id002"}]}}
    r = gql(api, '{ Todo(filter: {_docID: {_in: ["id001"]}}, order: {_docID: DESC}) { title } }')
    assert r == {"data": {"Todo": [{"title": "b"}]}}
    r = gql(api, '{ Todo(filter: {tags: {_eq: ["x"]}}) { title } }')
    assert r == {"data": {"Todo": [{"title": "b"}]}}


def test_update_and_delete(api):
    gql(api, 'mutation { create_Todo(input: [{title: "a", votes: 1}, {title: "b", votes: 2}]) { _docID } }')
    r = gql(api, 'mutation { update_Todo(filter: {votes: {_ge: 2}}, input: {done: true}) { title done _version } }')
    assert r == {"data": {"update_Todo": [{"title": "b", "done": True, "_version": 2}]}}
    r = gql(api, 'mutation { update_Todo(docID: ["id001"], input: {title: "A"}) { title } }')
    assert r == {"data": {"update_Todo": [{"title": "A"}]}}
    r = gql(api, 'mutation { delete_Todo(docID: ["id001"]) { _docID _deleted } }')
    assert r == {"data": {"delete_Todo": [{"_docID": "id001", "_deleted": True}]}}
    assert gql(api, "{ Todo { title } }") == {"data": {"Todo": [{"title": "b"}]}}
    r = gql(api, 'mutation { delete_Todo { _docID } }')
    assert "give docID or filter" in r["errors"][0]["message"] and r["data"] == {"delete_Todo": None}


def test_commits(api):
    r = gql(api, '{ _commits(docID: "x") { cid height links { cid } actor signature } }')
    assert r == {"data": {"_commits": [
        {"cid": "bafy1", "height": 1, "links": [], "actor": "abababab", "signature": "sig"},
        {"cid": "bafy2", "height": 2, "links": [{"cid": "bafy1"}], "actor": "abababab", "signature": None}]}}
    r = gql(api, '{ _commits(docID: "missing") { cid } }')
    assert r["errors"][0]["message"] == "NotFoundError: no such document"
    assert r["errors"][0]["path"] == ["_commits"]


def test_errors_follow_the_spec_and_hide_internals(api):
    r = gql(api, "{ Todo { nope } }")
    assert r["errors"][0]["message"].startswith("Cannot query field 'nope'") and "data" not in r
    r = gql(api, "{ Todo(filter: {title: {_eqq: 1}}) { title } }")
    assert "_eqq" in r["errors"][0]["message"]
    r = gql(api, "{ Todo( ")
    assert "Syntax Error" in r["errors"][0]["message"] and r["errors"][0]["locations"]
    r = gql(api, 'mutation { create_Todo(input: [{done: true}]) { title } }')
    assert r["errors"][0]["message"] == "SchemaValidationError: Todo.title: required (String!) but missing"
    assert r["errors"][0]["path"] == ["create_Todo"]
    r = gql(api, 'mutation { create_Todo(input: [{title: "x", due: "tomorrow"}]) { title } }')
    assert "DateTime" in r["errors"][0]["message"]
    r = gql(api, 'mutation { create_Todo(input: [{title: "x", blob: "zz"}]) { title } }')
    assert "hex" in r["errors"][0]["message"]
    r = gql(api, '{ Todo(cid: "boom") { title } }')
    assert r["errors"][0]["message"] == "internal error" and "passwd" not in str(r)
    r = gql(api, '{ Todo(cid: "bnope") { title } }')
    assert r["errors"][0]["message"] == "NotFoundError: no commit bnope"
    r = gql(api, 'mutation { create_Todo(input: [{title: "x", votes: 3000000000}]) { title } }')
    assert "32-bit" in r["errors"][0]["message"]  # refused on input...
    api[1].create("Todo", {"title": "x", "votes": 3_000_000_000})  # ...stored by another path
    r = gql(api, "{ Todo { votes } }")
    assert "32-bit" in r["errors"][0]["message"] and r["errors"][0]["path"] == ["Todo", 0, "votes"]
    assert gql(api, None) == {"errors": [{"message": "query must be a string"}]}
    assert "longer than" in gql(api, "{" + " " * 200_000 + "}")["errors"][0]["message"]
    assert gql(api, "{ Todo { title } }", variables=[1])["errors"][0]["message"] == "variables must be an object"


def test_depth_limit(api):
    q = "{ Todo { author " + "{ name " * 1 + "} } }"
    assert "errors" not in gql(api, q)
    deep = "query { " + "Todo { author { " * 9 + "name" + " } }" * 9 + " }"
    r = gql(api, deep)
    assert r["errors"][0]["message"] == f"query nested deeper than {MAX_QUERY_DEPTH}"
    frag = "fragment F on Todo { title author { name } } { Todo { ...F } }"
    assert "errors" not in gql(api, frag)


def test_read_only_endpoint():
    reg = SchemaRegistry()
    reg.register(SDL)
    api = GraphQLAPI(reg, FakeBackend(), allow_mutations=False)
    r = api.execute('mutation { create_Todo(input: [{title: "x"}]) { title } }')
    assert r["errors"][0]["message"] == "writes are disabled on this endpoint"
    assert api.execute("{ Todo { title } }") == {"data": {"Todo": []}}
    assert set(api.schema.query_type.fields) == {"Todo", "Author", "_commits"}


def test_backend_conflicts_surface_as_errors():
    reg = SchemaRegistry()
    reg.register(SDL.replace("title: String!", "title: String! @index(unique: true)"))
    be = FakeBackend()
    src, ci = be.col("Todo")
    ci.create_index("title", unique=True, docs=[])
    api = GraphQLAPI([reg.get("Todo")], be)
    api.execute('mutation { create_Todo(input: [{title: "x"}]) { title } }')
    r = api.execute('mutation { create_Todo(input: [{title: "x"}]) { title } }')
    assert r["errors"][0]["message"].startswith("ConflictError: Todo: unique index")


def test_bad_backend_or_schemas():
    reg = SchemaRegistry()
    reg.register(SDL)
    with pytest.raises(ValidationError, match="lacks a callable 'commits'"):
        GraphQLAPI(reg, {"find": len, "create": len, "update": len, "delete": len})
    with pytest.raises(ValidationError, match="no collection schemas"):
        GraphQLAPI([], FakeBackend())
    assert ConflictError  # imported for the backend contract's error types
