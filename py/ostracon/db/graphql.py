"""A DefraDB-style GraphQL API generated from collection schemas (graphql-core, pure Python).

For every collection schema `Todo` (core.schema.Schema) the generated GraphQL schema has::

    query {
      Todo(filter: TodoFilterArg, order: [TodoOrderArg], limit: Int, offset: Int,
           docID: [ID], cid: String): [Todo]
      _commits(docID: ID!): [Commit]      # cid height links { cid } actor signature
    }
    mutation {
      create_Todo(input: [TodoMutationInputArg!]!): [Todo]
      update_Todo(docID: [ID], filter: TodoFilterArg, input: TodoMutationInputArg!): [Todo]
      delete_Todo(docID: [ID], filter: TodoFilterArg): [Todo]
    }

`Todo` has the schema's fields plus `_docID` (DefraDB's name for `_id`), `_version`,
`_created`, `_updated`, `_deleted`, `_heads`. Filters use the query language of
core/query.py (`_eq _ne _gt _ge _lt _le _in _nin _like _nlike _ilike _nilike _and _or _not`,
nested objects); `order` is DefraDB's `{field: ASC|DESC}` objects (a single object is
accepted as a list of one, per GraphQL input coercion).

Scalars: String, Int (GraphQL's Int is 32-bit: larger values are reported as field errors;
use Float or JSON for them), Float, Boolean, ID, DateTime (ISO 8601 string), Blob/Bytes
(hex string on the wire, bytes inside), JSON (any JSON-like value).

The data layer is abstract: a `backend` object (or mapping) with the callables
    find(collection, filter, order, limit, offset, cid) -> list[doc]
    create(collection, doc) -> doc
    update(collection, doc_id, fields) -> doc          (a patch)
    delete(collection, doc_id) -> doc | None
    commits(doc_id) -> list[{cid, height, links: [cid | {cid}], actor, signature}]
so the Database (and tests, with a fake) plug in without this module knowing storage.

Responses follow the GraphQL spec: `{"data": …, "errors": [{"message", "locations",
"path"}]}`. Ostracon errors (validation, conflicts, not found) keep their message;
anything unexpected becomes "internal error" — never a traceback. Writes can be disabled
(`allow_mutations=False`), which is what `ostracon serve` does unless given a flag/token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    execute_sync,
    parse,
    validate,
    value_from_ast_untyped,
)

from ..core import cid as cidlib
from ..core.block import check_doc_id, decode_seal
from ..core.errors import NotFoundError, OstraconError, ValidationError
from ..core.query.filters import compile_filter
from ..core.query.schema import FieldType, Schema, SchemaRegistry, TypeDef, _is_datetime
from ..core.replica import Replica

__all__ = ["GraphQLAPI", "build_graphql_schema", "MAX_QUERY_CHARS", "MAX_QUERY_DEPTH"]

# Limits (named, documented): the endpoint takes untrusted text; bound parse and walk work.
MAX_QUERY_CHARS = 100_000
MAX_QUERY_DEPTH = 16          # nested selection sets; enough for embedded objects + commits
MAX_MUTATION_INPUTS = 1_000   # documents per create_X call

_NAME_RE = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_META_FIELDS = ("_docID", "_version", "_created", "_updated", "_deleted", "_heads")


# --- scalars --------------------------------------------------------------------------------

def _json_out(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [_json_out(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_out(x) for k, x in v.items()}
    return v


def _json_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    return value_from_ast_untyped(node, variables)


JSON = GraphQLScalarType(
    "JSON", description="Any JSON-like value.", serialize=_json_out, parse_value=lambda v: v,
    parse_literal=_json_literal)


def _blob_in(v: Any) -> bytes:
    if not isinstance(v, str):
        raise GraphQLError("Blob must be a hex string")
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise GraphQLError("Blob must be a hex string") from None


def _blob_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> bytes:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("Blob must be a hex string")
    return _blob_in(node.value)


Blob = GraphQLScalarType(
    "Blob", description="Bytes, as a hex string on the wire.",
    serialize=lambda v: v.hex() if isinstance(v, (bytes, bytearray)) else _no(v, "Blob"),
    parse_value=_blob_in, parse_literal=_blob_literal)


def _no(v: Any, name: str) -> NoReturn:
    raise GraphQLError(f"{name} cannot represent {type(v).__name__}")


def _dt_in(v: Any) -> str:
    if not isinstance(v, str) or not _is_datetime(v):
        raise GraphQLError("DateTime must be an ISO 8601 string")
    return v


def _dt_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> str:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("DateTime must be an ISO 8601 string")
    return _dt_in(node.value)


DateTime = GraphQLScalarType(
    "DateTime", description="An ISO 8601 date/time string.",
    serialize=lambda v: v if isinstance(v, str) else _no(v, "DateTime"),
    parse_value=_dt_in, parse_literal=_dt_literal)

_SCALARS = {"String": GraphQLString, "Int": GraphQLInt, "Float": GraphQLFloat,
            "Boolean": GraphQLBoolean, "ID": GraphQLID, "DateTime": DateTime, "Blob": Blob,
            "Bytes": Blob, "JSON": JSON, "Text": GraphQLString}

Ordering = GraphQLEnumType("Ordering", {"ASC": "ASC", "DESC": "DESC"})


def _operator_block(name: str, t: GraphQLInputType, *, ordered: bool, like: bool) -> GraphQLInputObjectType:
    fields = {"_eq": GraphQLInputField(t), "_ne": GraphQLInputField(t),
              "_in": GraphQLInputField(GraphQLList(t)), "_nin": GraphQLInputField(GraphQLList(t))}
    if ordered:
        for op in ("_gt", "_ge", "_lt", "_le"):
            fields[op] = GraphQLInputField(t)
    if like:
        for op in ("_like", "_nlike", "_ilike", "_nilike"):
            fields[op] = GraphQLInputField(GraphQLString)
    return GraphQLInputObjectType(name, fields)


_OPERATOR_BLOCKS = {
    "String": _operator_block("StringOperatorBlock", GraphQLString, ordered=True, like=True),
    "ID": _operator_block("IDOperatorBlock", GraphQLID, ordered=True, like=True),
    "Text": _operator_block("TextOperatorBlock", GraphQLString, ordered=True, like=True),
    "Int": _operator_block("IntOperatorBlock", GraphQLInt, ordered=True, like=False),
    "Float": _operator_block("FloatOperatorBlock", GraphQLFloat, ordered=True, like=False),
    "Boolean": _operator_block("BooleanOperatorBlock", GraphQLBoolean, ordered=True, like=False),
    "DateTime": _operator_block("DateTimeOperatorBlock", DateTime, ordered=True, like=True),
    "Blob": _operator_block("BlobOperatorBlock", Blob, ordered=True, like=False),
    "JSON": _operator_block("JSONOperatorBlock", JSON, ordered=False, like=False),
}
_OPERATOR_BLOCKS["Bytes"] = _OPERATOR_BLOCKS["Blob"]

CommitLink = GraphQLObjectType("CommitLink", {"cid": GraphQLField(GraphQLString)})
Commit = GraphQLObjectType("Commit", {
    "cid": GraphQLField(GraphQLString),
    "height": GraphQLField(GraphQLInt),
    "links": GraphQLField(GraphQLList(CommitLink)),
    "actor": GraphQLField(GraphQLString),
    "signature": GraphQLField(GraphQLString),
    "collection": GraphQLField(GraphQLString),
    "docID": GraphQLField(GraphQLID),
    "schemaVersionId": GraphQLField(GraphQLString),
})


# --- backend --------------------------------------------------------------------------------

class _Backend:
    """Normalises an object or a mapping of callables into the five operations."""

    OPS = ("find", "create", "update", "delete", "commits")
    find: Callable[..., list[dict]]
    create: Callable[..., dict]
    update: Callable[..., dict]
    delete: Callable[..., dict | None]
    commits: Callable[..., list[dict]]

    def __init__(self, backend: Any):
        for op in self.OPS:
            fn = backend.get(op) if isinstance(backend, Mapping) else getattr(backend, op, None)
            if not callable(fn):
                raise ValidationError(f"GraphQL backend lacks a callable {op!r}")
            setattr(self, op, fn)


def _guard(fn: Callable) -> Callable:
    """Resolver wrapper: Ostracon errors keep their message, anything else is hidden."""
    def resolver(root: Any, info: GraphQLResolveInfo, **kw: Any) -> Any:
        try:
            return fn(root, info, **kw)
        except GraphQLError:
            raise
        except OstraconError as e:
            raise GraphQLError(f"{type(e).__name__}: {e}") from e
        except Exception as e:  # a bug or backend failure: never leak internals
            raise GraphQLError("internal error") from e
    return resolver


# --- schema generation ----------------------------------------------------------------------

class _Builder:
    def __init__(self, schemas: list[Schema], backend: _Backend, allow_mutations: bool):
        self.schemas = {s.name: s for s in schemas}
        self.backend = backend
        self.allow_mutations = allow_mutations
        self.objects: dict[str, GraphQLObjectType] = {}
        self.filters: dict[str, GraphQLInputObjectType] = {}
        self.orders: dict[str, GraphQLInputObjectType] = {}
        self.inputs: dict[str, GraphQLInputObjectType] = {}
        self.typedefs: dict[str, TypeDef] = {}
        for s in schemas:
            for t in (s.root, *s.embedded):
                prev = self.typedefs.get(t.name)
                if prev is not None and prev != t and t.name not in self.schemas:
                    raise ValidationError(f"GraphQL: two different definitions of type {t.name}")
                if t.name in self.schemas:
                    self.typedefs[t.name] = self.schemas[t.name].root
                else:
                    self.typedefs.setdefault(t.name, t)
        for name, td in self.typedefs.items():
            if not _NAME_RE.fullmatch(name):
                raise ValidationError(f"GraphQL: type name {name!r} is not a GraphQL name")
            for f in td.fields:
                if not _NAME_RE.fullmatch(f.name):
                    raise ValidationError(f"GraphQL: {name}.{f.name} is not a GraphQL name")

    # output types
    def out_type(self, ft: FieldType) -> GraphQLOutputType:
        if ft.of is not None:
            return GraphQLList(self.out_type(ft.of))
        assert ft.name is not None  # a type that is not a list has a name
        return _SCALARS.get(ft.name) or self.obj(ft.name)

    def obj(self, name: str) -> GraphQLObjectType:
        if name not in self.objects:
            td = self.typedefs[name]

            def fields() -> dict[str, GraphQLField]:
                out = {f.name: GraphQLField(self.out_type(f.type)) for f in td.fields}
                if name in self.schemas:
                    out.update({
                        "_docID": GraphQLField(GraphQLID, resolve=lambda d, i: d.get("_id")),
                        "_version": GraphQLField(GraphQLInt),
                        "_created": GraphQLField(GraphQLFloat),
                        "_updated": GraphQLField(GraphQLFloat),
                        "_deleted": GraphQLField(GraphQLBoolean),
                        "_heads": GraphQLField(GraphQLList(GraphQLString)),
                    })
                return out
            self.objects[name] = GraphQLObjectType(name, fields)
        return self.objects[name]

    # filter / order / mutation inputs
    def filter_arg(self, name: str) -> GraphQLInputObjectType:
        if name not in self.filters:
            td = self.typedefs[name]

            def fields() -> dict[str, GraphQLInputField]:
                me = self.filters[name]
                out = {"_and": GraphQLInputField(GraphQLList(me)),
                       "_or": GraphQLInputField(GraphQLList(me)),
                       "_not": GraphQLInputField(me)}
                if name in self.schemas:
                    out["_docID"] = GraphQLInputField(_OPERATOR_BLOCKS["ID"])
                for f in td.fields:
                    if f.type.of is not None:
                        out[f.name] = GraphQLInputField(_OPERATOR_BLOCKS["JSON"])
                    elif f.type.name in _OPERATOR_BLOCKS:
                        out[f.name] = GraphQLInputField(_OPERATOR_BLOCKS[f.type.name])
                    else:
                        out[f.name] = GraphQLInputField(self.filter_arg(str(f.type.name)))
                return out
            self.filters[name] = GraphQLInputObjectType(f"{name}FilterArg", fields)
        return self.filters[name]

    def order_arg(self, name: str) -> GraphQLInputObjectType:
        if name not in self.orders:
            td = self.typedefs[name]

            def fields() -> dict[str, GraphQLInputField]:
                out = {}
                if name in self.schemas:
                    out["_docID"] = GraphQLInputField(Ordering)
                for f in td.fields:
                    if f.type.of is not None:
                        continue
                    if f.type.name in _SCALARS:
                        out[f.name] = GraphQLInputField(Ordering)
                    else:
                        out[f.name] = GraphQLInputField(self.order_arg(str(f.type.name)))
                return out
            self.orders[name] = GraphQLInputObjectType(f"{name}OrderArg", fields)
        return self.orders[name]

    def in_type(self, ft: FieldType) -> GraphQLInputType:
        if ft.of is not None:
            return GraphQLList(self.in_type(ft.of))
        assert ft.name is not None  # a type that is not a list has a name
        return _SCALARS.get(ft.name) or self.input_arg(ft.name)

    def input_arg(self, name: str) -> GraphQLInputObjectType:
        # Every field nullable: the same input type serves create (required fields are then
        # checked by Schema.validate, naming the field) and update (a patch).
        if name not in self.inputs:
            td = self.typedefs[name]

            def fields() -> dict[str, GraphQLInputField]:  # a thunk: input types may nest
                return {f.name: GraphQLInputField(self.in_type(f.type)) for f in td.fields}
            self.inputs[name] = GraphQLInputObjectType(f"{name}MutationInputArg", fields)
        return self.inputs[name]

    # resolvers
    def _target_filter(self, filter: dict | None, docID: list[str] | None) -> dict:
        flt = dict(filter or {})
        if docID is not None:
            flt = {"_and": [flt, {"_id": {"_in": list(docID)}}]}
        return flt

    def query_field(self, s: Schema) -> GraphQLField:
        name = s.name
        backend = self.backend

        def resolve(root: Any, info: GraphQLResolveInfo, filter: dict | None = None, order: Any = None,
                    limit: int | None = None, offset: int | None = None, docID: list[str] | None = None,
                    cid: str | None = None) -> list[dict]:
            return backend.find(name, self._target_filter(filter, docID), order, limit,
                                offset or 0, cid)
        return GraphQLField(GraphQLList(self.obj(name)), args={
            "filter": GraphQLArgument(self.filter_arg(name)),
            "order": GraphQLArgument(GraphQLList(self.order_arg(name))),
            "limit": GraphQLArgument(GraphQLInt),
            "offset": GraphQLArgument(GraphQLInt),
            "docID": GraphQLArgument(GraphQLList(GraphQLNonNull(GraphQLID))),
            "cid": GraphQLArgument(GraphQLString),
        }, resolve=_guard(resolve))

    def _writes(self) -> None:
        if not self.allow_mutations:
            raise GraphQLError("writes are disabled on this endpoint")

    def mutation_fields(self, s: Schema) -> dict[str, GraphQLField]:
        name = s.name
        backend = self.backend
        obj = GraphQLList(self.obj(name))
        inp = self.input_arg(name)

        def create(root: Any, info: GraphQLResolveInfo, input: dict | list[dict]) -> list[dict]:
            self._writes()
            docs = input if isinstance(input, list) else [input]
            if len(docs) > MAX_MUTATION_INPUTS:
                raise ValidationError(f"create_{name}: at most {MAX_MUTATION_INPUTS} documents per call")
            for d in docs:  # validate all first: all or nothing on schema errors
                s.validate(d)
            return [backend.create(name, d) for d in docs]

        def targets(filter: dict | None, docID: list[str] | None, what: str) -> list[dict]:
            if filter is None and docID is None:
                raise ValidationError(f"{what}_{name}: give docID or filter (refusing to touch every document)")
            return backend.find(name, self._target_filter(filter, docID), None, None, 0, None)

        def update(root: Any, info: GraphQLResolveInfo, input: dict, filter: dict | None = None,
                   docID: list[str] | None = None) -> list[dict]:
            self._writes()
            s.validate(input, partial=True)
            return [backend.update(name, d["_id"], input) for d in targets(filter, docID, "update")]

        def delete(root: Any, info: GraphQLResolveInfo, filter: dict | None = None,
                   docID: list[str] | None = None) -> list[dict]:
            self._writes()
            out = []
            for d in targets(filter, docID, "delete"):
                gone = backend.delete(name, d["_id"])
                out.append(gone if isinstance(gone, dict) else {**d, "_deleted": True})
            return out

        ids = GraphQLArgument(GraphQLList(GraphQLNonNull(GraphQLID)))
        flt = GraphQLArgument(self.filter_arg(name))
        return {
            f"create_{name}": GraphQLField(obj, args={
                "input": GraphQLArgument(GraphQLNonNull(GraphQLList(GraphQLNonNull(inp))))},
                resolve=_guard(create)),
            f"update_{name}": GraphQLField(obj, args={
                "input": GraphQLArgument(GraphQLNonNull(inp)), "filter": flt, "docID": ids},
                resolve=_guard(update)),
            f"delete_{name}": GraphQLField(obj, args={"filter": flt, "docID": ids},
                                           resolve=_guard(delete)),
        }

    def commits_field(self) -> GraphQLField:
        backend = self.backend

        def resolve(root: Any, info: GraphQLResolveInfo, docID: str) -> list[dict]:
            out = []
            for c in backend.commits(docID):
                links = [{"cid": x} if isinstance(x, str) else x for x in (c.get("links") or [])]
                out.append({**c, "links": links})
            return out
        return GraphQLField(GraphQLList(Commit), args={"docID": GraphQLArgument(GraphQLNonNull(GraphQLID))},
                            resolve=_guard(resolve))

    def build(self) -> GraphQLSchema:
        query = {s.name: self.query_field(s) for s in self.schemas.values()}
        query["_commits"] = self.commits_field()
        mutation = {}
        for s in self.schemas.values():
            mutation.update(self.mutation_fields(s))
        return GraphQLSchema(
            query=GraphQLObjectType("Query", query),
            mutation=GraphQLObjectType("Mutation", mutation) if mutation else None)


def build_graphql_schema(schemas: Iterable[Schema] | SchemaRegistry, backend: Any, *,
                         allow_mutations: bool = True) -> GraphQLSchema:
    if isinstance(schemas, SchemaRegistry):
        schemas = [schemas.get(n) for n in schemas.names()]
    schemas = list(schemas)
    if not schemas:
        raise ValidationError("GraphQL: no collection schemas to expose")
    return _Builder(schemas, _Backend(backend), allow_mutations).build()


def _depth(doc: DocumentNode) -> int:
    frags = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}

    def walk(sel_set: SelectionSetNode | None, level: int, seen: frozenset) -> int:
        if sel_set is None:
            return level
        deepest = level
        for sel in sel_set.selections:
            if isinstance(sel, FieldNode):
                d = walk(sel.selection_set, level + 1, seen) if sel.selection_set else level + 1
            elif isinstance(sel, InlineFragmentNode):
                d = walk(sel.selection_set, level, seen)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in seen or name not in frags:
                    continue  # cycles/unknown fragments are reported by validation
                d = walk(frags[name].selection_set, level, seen | {name})
            else:
                continue
            deepest = max(deepest, d)
            if deepest > MAX_QUERY_DEPTH:
                return deepest
        return deepest

    return max((walk(d.selection_set, 0, frozenset()) for d in doc.definitions
                if isinstance(d, OperationDefinitionNode)), default=0)


class GraphQLAPI:
    """`api.execute(query, variables)` → a spec-shaped response dict."""

    def __init__(self, schemas: Iterable[Schema] | SchemaRegistry, backend: Any, *,
                 allow_mutations: bool = True):
        self.schema = build_graphql_schema(schemas, backend, allow_mutations=allow_mutations)

    def execute(self, query: str, variables: dict | None = None,
                operation_name: str | None = None) -> dict:
        if not isinstance(query, str):
            return {"errors": [{"message": "query must be a string"}]}
        if len(query) > MAX_QUERY_CHARS:
            return {"errors": [{"message": f"query longer than {MAX_QUERY_CHARS} characters"}]}
        if variables is not None and not isinstance(variables, dict):
            return {"errors": [{"message": "variables must be an object"}]}
        try:
            doc = parse(query)
        except GraphQLError as e:
            return {"errors": [e.formatted]}
        if _depth(doc) > MAX_QUERY_DEPTH:
            return {"errors": [{"message": f"query nested deeper than {MAX_QUERY_DEPTH}"}]}
        errors = validate(self.schema, doc)
        if errors:
            return {"errors": [e.formatted for e in errors]}
        try:
            result = execute_sync(self.schema, doc, variable_values=variables,
                                  operation_name=operation_name)
        except GraphQLError as e:  # pragma: no cover (execute_sync reports errors in result)
            return {"errors": [e.formatted]}
        if not isinstance(result, ExecutionResult):  # pragma: no cover (no async resolvers)
            return {"errors": [{"message": "internal error"}]}
        return dict(result.formatted)


# --------------------------------------------------------------------------------------
# The backend over a Database

class DatabaseBackend:
    """The five operations GraphQLAPI needs, over Collection methods (so the
    same validation, uniqueness, tiers and planner apply as to native calls)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def find(self, collection: str, filter: Any, order: Any, limit: Any, offset: Any,
             cid: str | None) -> list[dict]:
        col = self.db.collection(collection)
        if cid is None:
            return col.find(filter, order, limit, offset)
        # `cid`: the document as it was at that commit (DefraDB's time-travel query).
        raw = cidlib.parse_cid(cid)
        info = self.db.replica.info.get(raw)
        if info is None:
            raise NotFoundError(f"no commit {cid}")
        if info.collection != collection:
            return []
        doc = col.get(info.doc_id, at=cid, include_deleted=True)
        if doc is None or doc["_deleted"] or not compile_filter(filter).match(doc):
            return []
        return [doc]

    def create(self, collection: str, doc: dict) -> dict:
        col = self.db.collection(collection)
        return col.get(col.create(doc))

    def update(self, collection: str, doc_id: str, fields: dict) -> dict:
        col = self.db.collection(collection)
        col.patch(doc_id, fields)
        return col.get(doc_id)

    def delete(self, collection: str, doc_id: str) -> dict | None:
        col = self.db.collection(collection)
        col.delete(doc_id)
        return col.get(doc_id, include_deleted=True)

    def commits(self, doc_id: str) -> list[dict]:
        """Every commit of the document(s) with this id, in any collection: cid, height,
        links (parents), actor, signature (hex Ed25519 signature of the seal covering the
        commit; null until the batch is flushed), collection, docID, schemaVersionId."""
        db = self.db
        check_doc_id(doc_id)
        r = db.replica
        out = []
        for name in db.collections():
            if r.doc(name, doc_id) is None:
                continue
            for c in db.collection(name).history(doc_id, allow_pruned=True):
                if "cid" not in c:
                    continue  # the pruned-history marker
                actor = bytes.fromhex(c["actor"])
                out.append({"cid": c["cid"], "height": c["height"], "links": c["parents"],
                            "actor": c["actor"], "signature": _seal_signature(r, actor, c["seq"]),
                            "collection": name, "docID": doc_id,
                            "schemaVersionId": c["schema"]})
        return out


def _seal_signature(r: Replica, actor: bytes, seq: int) -> str | None:
    for first, last, data in r.seals.get(actor, ()):
        if first <= seq <= last:
            return decode_seal(data).signature.hex()
    return None
