"""A DefraDB-style GraphQL API generated from collection schemas (graphql-core, pure Python).

For every collection schema `Todo` (core.schema.Schema) the generated GraphQL schema has::

    query {
      Todo(filter: TodoFilterArg, order: [TodoOrderArg], limit: Int, offset: Int,
           docID: [ID], cid: String): [Todo]
      _commits(docID: ID, cid: String, depth: Int): [Commit]  # cid height links { cid } actor
                                                               # signature meta
      _count(Todo: {filter: TodoFilterArg}): Int!
    }
    mutation {
      create_Todo(input: [TodoMutationInputArg!]!): [Todo]
      update_Todo(docID: [ID], filter: TodoFilterArg, input: TodoMutationInputArg!): [Todo]
      delete_Todo(docID: [ID], filter: TodoFilterArg): [Todo]
      upsert_Todo(filter: TodoFilterArg!, create: TodoMutationInputArg!,
                  update: TodoMutationInputArg!): [Todo]
    }

A collection without a schema is exposed too (`loose`): `pages(filter: JSON, order: JSON,
...)` returning the metadata fields and `_doc` (the user fields as JSON); its mutations
take JSON inputs. In filters `{done: true}` is shorthand for `{done: {_eq: true}}`
(db/graphql_backend.py). `_commits(cid:, depth:)` walks at most `depth` parent links from
`cid` (or from the document's heads).

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
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLError,
    GraphQLField,
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
    execute_sync,
    parse,
    validate,
)

from ..core.errors import OstraconError, ValidationError
from ..core.query.schema import Schema
from ..core.query.schema_registry import SchemaRegistry
from ..core.query.sdl import FieldType, TypeDef
from .graphql_backend import DatabaseBackend, expand_shorthand, walk_commits
from .graphql_types import (
    JSON,
    OPERATOR_BLOCKS,
    SCALAR_TYPES,
    Commit,
    Ordering,
    meta_fields,
)

__all__ = ["GraphQLAPI", "DatabaseBackend", "build_graphql_schema", "MAX_QUERY_CHARS", "MAX_QUERY_DEPTH"]

# Limits (named, documented): the endpoint takes untrusted text; bound parse and walk work.
MAX_QUERY_CHARS = 100_000
MAX_QUERY_DEPTH = 16          # nested selection sets; enough for embedded objects + commits
MAX_MUTATION_INPUTS = 1_000   # documents per create_X call

_NAME_RE = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_META_FIELDS = ("_docID", "_version", "_created", "_updated", "_deleted", "_heads")


# --- backend --------------------------------------------------------------------------------

class _Backend:
    """Normalises an object or a mapping of callables into the five operations (and the
    optional `count(collection, filter)` and `locate(cid) -> doc id`)."""

    OPS = ("find", "create", "update", "delete", "commits")
    find: Callable[..., list[dict]]
    create: Callable[..., dict]
    update: Callable[..., dict]
    delete: Callable[..., dict | None]
    commits: Callable[..., list[dict]]

    def __init__(self, backend: Any):
        def get(op: str) -> Any:
            return backend.get(op) if isinstance(backend, Mapping) else getattr(backend, op, None)
        for op in self.OPS:
            fn = get(op)
            if not callable(fn):
                raise ValidationError(f"GraphQL backend lacks a callable {op!r}")
            setattr(self, op, fn)
        count, locate = get("count"), get("locate")
        self.count: Callable[..., int] = count if callable(count) else (
            lambda collection, filter: len(self.find(collection, filter, None, None, 0, None)))
        self.locate: Callable[[str], str] | None = locate if callable(locate) else None


def _filter_object(filter: Any) -> dict:
    """A `filter:` argument as a filter object (None: every document). A `JSON`-typed filter
    (collections without a schema) accepts any value, so one that is not an object is refused
    with ValidationError: `false` or `[]` must not widen to every document (a delete with it
    would delete them all), nor a list of pairs be read as an object."""
    if filter is None:
        return {}
    if not isinstance(filter, dict):
        raise ValidationError(f"filter must be an object, not {type(filter).__name__}")
    return dict(filter)


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
        return SCALAR_TYPES.get(ft.name) or self.obj(ft.name)

    def obj(self, name: str) -> GraphQLObjectType:
        if name not in self.objects:
            td = self.typedefs[name]

            def fields() -> dict[str, GraphQLField]:
                out = {f.name: GraphQLField(self.out_type(f.type)) for f in td.fields}
                if name in self.schemas:
                    out.update(meta_fields())
                return out
            self.objects[name] = GraphQLObjectType(name, fields)
        return self.objects[name]

    def loose_obj(self, name: str) -> GraphQLObjectType:
        """A collection without a schema: the metadata fields and `_doc`, the user fields
        as one JSON object."""
        if name not in self.objects:
            self.objects[name] = GraphQLObjectType(name, lambda: {
                **meta_fields(),
                "_doc": GraphQLField(JSON, resolve=lambda d, i: {
                    k: v for k, v in d.items() if not k.startswith("_")}),
            })
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
                    out["_docID"] = GraphQLInputField(OPERATOR_BLOCKS["ID"])
                for f in td.fields:
                    if f.type.of is not None:
                        out[f.name] = GraphQLInputField(OPERATOR_BLOCKS["JSON"])
                    elif f.type.name in OPERATOR_BLOCKS:
                        out[f.name] = GraphQLInputField(OPERATOR_BLOCKS[f.type.name])
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
                    if f.type.name in SCALAR_TYPES:
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
        return SCALAR_TYPES.get(ft.name) or self.input_arg(ft.name)

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
        flt = _filter_object(filter)
        if docID is not None:
            flt = {"_and": [flt, {"_id": {"_in": list(docID)}}]}
        return flt

    def query_field(self, name: str, obj: GraphQLOutputType, flt: GraphQLInputType,
                    order: GraphQLInputType) -> GraphQLField:
        backend = self.backend

        def resolve(root: Any, info: GraphQLResolveInfo, filter: dict | None = None, order: Any = None,
                    limit: int | None = None, offset: int | None = None, docID: list[str] | None = None,
                    cid: str | None = None) -> list[dict]:
            return backend.find(name, self._target_filter(filter, docID), order, limit,
                                offset or 0, cid)
        return GraphQLField(GraphQLList(obj), args={
            "filter": GraphQLArgument(flt),
            "order": GraphQLArgument(GraphQLList(order)),
            "limit": GraphQLArgument(GraphQLInt),
            "offset": GraphQLArgument(GraphQLInt),
            "docID": GraphQLArgument(GraphQLList(GraphQLNonNull(GraphQLID))),
            "cid": GraphQLArgument(GraphQLString),
        }, resolve=_guard(resolve))

    def typed_fields(self, s: Schema) -> tuple[GraphQLField, dict[str, GraphQLField]]:
        name = s.name
        return (self.query_field(name, self.obj(name), self.filter_arg(name), self.order_arg(name)),
                self.mutation_fields(name, self.obj(name), self.filter_arg(name), self.input_arg(name),
                                     s.validate))

    def loose_fields(self, name: str) -> tuple[GraphQLField, dict[str, GraphQLField]]:
        def validate(doc: Any, partial: bool = False) -> None:
            if not isinstance(doc, dict):
                raise ValidationError(f"{name}: a document must be a JSON object")
        return (self.query_field(name, self.loose_obj(name), JSON, JSON),
                self.mutation_fields(name, self.loose_obj(name), JSON, JSON, validate))

    def _writes(self) -> None:
        if not self.allow_mutations:
            raise GraphQLError("writes are disabled on this endpoint")

    def mutation_fields(self, name: str, one: GraphQLOutputType,
                        flt_type: GraphQLInputObjectType | GraphQLScalarType,
                        inp: GraphQLInputObjectType | GraphQLScalarType,
                        validate: Callable[..., None]) -> dict[str, GraphQLField]:
        backend = self.backend
        obj = GraphQLList(one)

        def create(root: Any, info: GraphQLResolveInfo, input: dict | list[dict]) -> list[dict]:
            self._writes()
            docs = input if isinstance(input, list) else [input]
            if len(docs) > MAX_MUTATION_INPUTS:
                raise ValidationError(f"create_{name}: at most {MAX_MUTATION_INPUTS} documents per call")
            for d in docs:  # validate all first: all or nothing on schema errors
                validate(d)
            return [backend.create(name, d) for d in docs]

        def targets(filter: dict | None, docID: list[str] | None, what: str) -> list[dict]:
            if filter is None and docID is None:
                raise ValidationError(f"{what}_{name}: give docID or filter (refusing to touch every document)")
            return backend.find(name, self._target_filter(filter, docID), None, None, 0, None)

        def update(root: Any, info: GraphQLResolveInfo, input: dict, filter: dict | None = None,
                   docID: list[str] | None = None) -> list[dict]:
            self._writes()
            validate(input, partial=True)
            return [backend.update(name, d["_id"], input) for d in targets(filter, docID, "update")]

        def upsert(root: Any, info: GraphQLResolveInfo, filter: dict, create: dict, update: dict) -> list[dict]:
            # DefraDB's upsert: the one document matching `filter` is patched with `update`;
            # none → `create` is created; more than one → refused (nothing written).
            self._writes()
            found = backend.find(name, _filter_object(filter), None, 2, 0, None)
            if len(found) > 1:
                raise ValidationError(f"upsert_{name}: the filter matches more than one document")
            if found:
                validate(update, partial=True)
                return [backend.update(name, found[0]["_id"], update)]
            validate(create)
            return [backend.create(name, create)]

        def delete(root: Any, info: GraphQLResolveInfo, filter: dict | None = None,
                   docID: list[str] | None = None) -> list[dict]:
            self._writes()
            out = []
            for d in targets(filter, docID, "delete"):
                gone = backend.delete(name, d["_id"])
                out.append(gone if isinstance(gone, dict) else {**d, "_deleted": True})
            return out

        ids = GraphQLArgument(GraphQLList(GraphQLNonNull(GraphQLID)))
        flt = GraphQLArgument(flt_type)
        return {
            f"create_{name}": GraphQLField(obj, args={
                "input": GraphQLArgument(GraphQLNonNull(GraphQLList(GraphQLNonNull(inp))))},
                resolve=_guard(create)),
            f"update_{name}": GraphQLField(obj, args={
                "input": GraphQLArgument(GraphQLNonNull(inp)), "filter": flt, "docID": ids},
                resolve=_guard(update)),
            f"delete_{name}": GraphQLField(obj, args={"filter": flt, "docID": ids},
                                           resolve=_guard(delete)),
            f"upsert_{name}": GraphQLField(obj, args={
                "filter": GraphQLArgument(GraphQLNonNull(flt_type)),
                "create": GraphQLArgument(GraphQLNonNull(inp)),
                "update": GraphQLArgument(GraphQLNonNull(inp))}, resolve=_guard(upsert)),
        }

    def commits_field(self) -> GraphQLField:
        backend = self.backend

        def resolve(root: Any, info: GraphQLResolveInfo, docID: str | None = None, cid: str | None = None,
                    depth: int | None = None) -> list[dict]:
            if docID is None:
                if cid is None or backend.locate is None:
                    raise ValidationError("_commits needs docID (or a cid this replica holds)")
                docID = backend.locate(cid)
            out = []
            for c in backend.commits(docID):
                links = [x if isinstance(x, str) else x.get("cid") for x in (c.get("links") or [])]
                out.append({**c, "links": links})
            out = walk_commits(out, cid, depth)
            return [{**c, "links": [{"cid": x} for x in c["links"]]} for c in out]
        return GraphQLField(GraphQLList(Commit), args={
            "docID": GraphQLArgument(GraphQLID), "cid": GraphQLArgument(GraphQLString),
            "depth": GraphQLArgument(GraphQLInt)}, resolve=_guard(resolve))

    def count_field(self, filters: dict[str, GraphQLInputType]) -> GraphQLField:
        """DefraDB's top-level aggregate: `_count(pages: {filter: {...}})` counts the live
        documents of one collection (all of them without a filter)."""
        backend = self.backend
        args = {name: GraphQLArgument(GraphQLInputObjectType(f"{name}CountArg", {
            "filter": GraphQLInputField(t)})) for name, t in filters.items()}

        def resolve(root: Any, info: GraphQLResolveInfo, **given: Any) -> int:
            if len(given) != 1:
                raise ValidationError("_count takes exactly one collection argument")
            [(name, arg)] = given.items()
            flt = (arg or {}).get("filter")
            return int(backend.count(name, None if flt is None else _filter_object(flt)))
        return GraphQLField(GraphQLNonNull(GraphQLInt), args=args, resolve=_guard(resolve))

    def build(self, loose: Iterable[str] = ()) -> GraphQLSchema:
        query: dict[str, GraphQLField] = {}
        mutation: dict[str, GraphQLField] = {}
        filters: dict[str, GraphQLInputType] = {}
        for s in self.schemas.values():
            query[s.name], muts = self.typed_fields(s)
            mutation.update(muts)
            filters[s.name] = self.filter_arg(s.name)
        for name in loose:
            if name in self.schemas or name in self.typedefs or not _NAME_RE.fullmatch(name):
                continue  # a name GraphQL cannot spell (or a type's) is served by find()
            query[name], muts = self.loose_fields(name)
            mutation.update(muts)
            filters[name] = JSON
        query["_commits"] = self.commits_field()
        if filters:
            query["_count"] = self.count_field(filters)
        return GraphQLSchema(
            query=GraphQLObjectType("Query", query),
            mutation=GraphQLObjectType("Mutation", mutation) if mutation else None)


def build_graphql_schema(schemas: Iterable[Schema] | SchemaRegistry, backend: Any, *,
                         allow_mutations: bool = True, loose: Iterable[str] = ()) -> GraphQLSchema:
    """The GraphQL schema of the given collection schemas, plus `loose` collections (names
    without a schema, exposed with a JSON filter and a `_doc` JSON field)."""
    if isinstance(schemas, SchemaRegistry):
        schemas = [schemas.get(n) for n in schemas.names()]
    schemas = list(schemas)
    return _Builder(schemas, _Backend(backend), allow_mutations).build(sorted(loose))


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
                 allow_mutations: bool = True, loose: Iterable[str] = ()):
        self.schema = build_graphql_schema(schemas, backend, allow_mutations=allow_mutations,
                                           loose=loose)

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
        doc, variables = expand_shorthand(self.schema, doc, variables)
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


