"""Static limits for GraphQL requests that reach ``ostracon serve``, checked before execution.

A GraphQL query is a program: aliases repeat an expensive field as often as the author likes,
and nesting multiplies list sizes. One 87 KB query with thousands of aliases can otherwise hold
a server for minutes and answer hundreds of megabytes. This module rejects such documents from
their syntax alone (graphql-core's parser with a token cap, then one walk over the operation
with fragments expanded), so the check itself is cheap and bounded:

* ``max_tokens`` – lexical tokens in the document (graphql-core ``parse(max_tokens=...)``);
* ``max_aliases`` – aliased fields in the executed operation (fragments counted per use);
* ``max_cost`` – an upper estimate of resolved fields: every field costs the product of the
  page sizes of the list fields above it, where a field's page size is its ``limit`` / ``first``
  / ``last`` argument (capped at ``max_page``) or ``unbounded_page`` when it has none. This is
  the usual "query cost analysis" of GraphQL servers (e.g. GitHub's node limit).
  Given the schema the query runs against (``ostracon serve`` passes it), only fields whose
  type is a list multiply: an embedded object (``author { name }``) counts as one. Inside
  introspection a list's page is the schema's own largest such list (its number of types, the
  most fields of one type, ...), an upper bound that is far below ``unbounded_page``. (The full
  introspection query of GraphiQL still estimates above the default ``max_cost`` on a schema
  of a few dozen types, because the bound multiplies maxima; raise ``max_cost`` to serve it.)
  A field the schema does not know (the query is then invalid) counts as a list.
  Without the schema every field with a selection set counts as a list, except the fields of
  the introspection types that return one object (``queryType``, ``type``, ``ofType``, ...;
  GraphQL spec, "Schema Introspection").

The time budget and the response-size cap are enforced by the caller (serve.py), which runs the
query on a worker thread so the event loop never waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    parse,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

from .core.errors import ValidationError


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class GraphQLLimits:
    """Every limit with its default and reason (see the module docstring for the cost model)."""

    max_tokens: int = field(default=5000, metadata=_doc(
        "Lexical tokens per document: a legitimate query of this app is a few hundred tokens."))
    max_aliases: int = field(default=30, metadata=_doc(
        "Aliased fields: clients need a handful to fetch one field twice with other arguments."))
    max_cost: int = field(default=100_000, metadata=_doc(
        "Estimated resolved fields: ten lists of 1,000 documents with ten fields each."))
    max_page: int = field(default=10_000, metadata=_doc(
        "Largest page size the estimate believes; larger limit values count as this."))
    unbounded_page: int = field(default=1000, metadata=_doc(
        "Page size assumed for a list field without a limit argument."))
    time_budget_s: float = field(default=10.0, metadata=_doc(
        "Wall-clock seconds one execution may take; past it the client gets an error and new "
        "requests are refused until the running one finishes (one runs at a time)."))
    max_response_bytes: int = field(default=16 * 1024 * 1024, metadata=_doc(
        "Largest JSON response in bytes; a larger result is replaced by an error."))

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_aliases", "max_cost", "max_page", "unbounded_page", "max_response_bytes"):
            v = getattr(self, name)
            if type(v) is not int or v <= 0:
                raise ValidationError(f"GraphQLLimits.{name} must be a positive int")
        if not isinstance(self.time_budget_s, (int, float)) or not self.time_budget_s > 0:
            raise ValidationError("GraphQLLimits.time_budget_s must be > 0")


class QueryRejected(ValidationError):
    """The document breaks a GraphQLLimits rule; ``str(exc)`` says which."""


_PAGE_ARGS = ("limit", "first", "last")
# Introspection roots, and the fields of the introspection types that return one object, not a
# list (GraphQL spec, "Schema Introspection": __Schema, __Type, __Field, __InputValue).
_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
_INTROSPECTION_SINGLE = frozenset({"queryType", "mutationType", "subscriptionType", "type", "ofType"})


def check_query(query: str, variables: dict | None, limits: GraphQLLimits,
                operation_name: str | None = None, schema: GraphQLSchema | None = None) -> None:
    """Raise :class:`QueryRejected` when ``query`` breaks a limit; return None otherwise.

    ``schema``: the GraphQL schema the query will run against; with it only list fields
    multiply the cost (module docstring). Syntax errors are left to the executor (it reports
    them in the GraphQL error format), except that a document past ``max_tokens`` is rejected
    here."""
    try:
        doc = parse(query, no_location=True, max_tokens=limits.max_tokens)
    except GraphQLError as exc:
        if "token" in str(exc).lower():
            raise QueryRejected(f"query has more than {limits.max_tokens} tokens") from None
        return
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        ops = [o for o in ops if o.name is not None and o.name.value == operation_name]
    variables = variables or {}
    shape = _SchemaShape(schema) if schema is not None else None
    for op in ops:
        walker = _Walker(fragments, variables, limits, shape)
        root = None if shape is None else shape.root(op.operation.value)
        walker.walk(op.selection_set, 1, (), False, root)
        if walker.aliases > limits.max_aliases:
            raise QueryRejected(f"query uses {walker.aliases} aliases; at most {limits.max_aliases} are allowed")


# Introspection list fields (GraphQL spec, "Schema Introspection") and the schema measure that
# bounds each one's length.
_INTROSPECTION_LISTS = ("types", "directives", "fields", "args", "inputFields", "enumValues", "interfaces",
                        "possibleTypes", "locations")


class _SchemaShape:
    """What the walk needs of a schema: each field's type, and the longest introspection lists."""

    def __init__(self, schema: GraphQLSchema):
        self.schema = schema
        types = [t for t in schema.type_map.values() if isinstance(t, GraphQLNamedType)]
        per_type = {"fields": 0, "inputFields": 0, "enumValues": 0, "interfaces": 0, "possibleTypes": 0, "args": 0}
        for t in types:
            if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType)):
                per_type["fields"] = max(per_type["fields"], len(t.fields))
                per_type["interfaces"] = max(per_type["interfaces"], len(t.interfaces))
                for f in t.fields.values():
                    per_type["args"] = max(per_type["args"], len(f.args))
            if isinstance(t, GraphQLInputObjectType):
                per_type["inputFields"] = max(per_type["inputFields"], len(t.fields))
            if isinstance(t, GraphQLUnionType):
                per_type["possibleTypes"] = max(per_type["possibleTypes"], len(t.types))
            if isinstance(t, GraphQLInterfaceType):
                per_type["possibleTypes"] = max(per_type["possibleTypes"], len(schema.get_possible_types(t)))
            values = getattr(t, "values", None)
            if isinstance(values, dict):
                per_type["enumValues"] = max(per_type["enumValues"], len(values))
        for d in schema.directives:
            per_type["args"] = max(per_type["args"], len(d.args))
        self.introspection_page = {**per_type, "types": len(types), "directives": len(schema.directives),
                                   "locations": max((len(d.locations) for d in schema.directives), default=0)}

    def root(self, operation: str) -> GraphQLNamedType | None:
        return {"query": self.schema.query_type, "mutation": self.schema.mutation_type,
                "subscription": self.schema.subscription_type}.get(operation)

    def field(self, parent: GraphQLNamedType | None, name: str) -> tuple[bool, GraphQLNamedType | None] | None:
        """(is a list, its named type) of field `name` of `parent`; None when unknown."""
        if name == "__schema":
            ftype = SchemaMetaFieldDef.type
        elif name == "__type":
            ftype = TypeMetaFieldDef.type
        elif isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)) and name in parent.fields:
            ftype = parent.fields[name].type
        else:
            return None
        inner = ftype.of_type if isinstance(ftype, GraphQLNonNull) else ftype
        return isinstance(inner, GraphQLList), get_named_type(ftype)


class _Walker:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], variables: dict, limits: GraphQLLimits,
                 shape: _SchemaShape | None = None):
        self.fragments = fragments
        self.variables = variables
        self.limits = limits
        self.shape = shape
        self.cost = 0
        self.aliases = 0

    def _page(self, field: FieldNode) -> int:
        for arg in field.arguments or ():
            if arg.name.value in _PAGE_ARGS:
                value = arg.value
                n = None
                if isinstance(value, IntValueNode):
                    n = int(value.value)
                elif isinstance(value, VariableNode):
                    v = self.variables.get(value.name.value)
                    n = v if type(v) is int else None
                if n is not None:
                    return max(1, min(n, self.limits.max_page))
        return self.limits.unbounded_page

    def _field_page(self, node: FieldNode, parent: GraphQLNamedType | None,
                    introspection: bool) -> tuple[int, GraphQLNamedType | None, bool]:
        """(page size, the field's named type, inside introspection) of a field with a selection set."""
        name = node.name.value
        inside = introspection or name in _INTROSPECTION_ROOTS
        known = None if self.shape is None else self.shape.field(parent, name)
        if known is None:
            single = name in _INTROSPECTION_ROOTS or (introspection and name in _INTROSPECTION_SINGLE)
            return (1 if single else self._page(node)), None, inside
        is_list, named = known
        if not is_list:
            page = 1
        elif inside and self.shape is not None and name in _INTROSPECTION_LISTS:
            page = max(1, self.shape.introspection_page[name])
        else:
            page = self._page(node)
        return page, named, inside

    def _fragment_type(self, type_condition: object, parent: GraphQLNamedType | None) -> GraphQLNamedType | None:
        if self.shape is None or type_condition is None:
            return parent
        found = self.shape.schema.get_type(type_condition.name.value)  # type: ignore[attr-defined]
        return found if found is not None else parent

    def walk(self, sel: SelectionSetNode, multiplier: int, stack: tuple[str, ...],
             introspection: bool, parent: GraphQLNamedType | None = None) -> None:
        for node in sel.selections:
            if isinstance(node, FieldNode):
                name = node.name.value
                if node.alias is not None:
                    self.aliases += 1
                    if self.aliases > self.limits.max_aliases:
                        raise QueryRejected(f"query uses more than {self.limits.max_aliases} aliases")
                self.cost += multiplier
                if self.cost > self.limits.max_cost:
                    raise QueryRejected(f"query cost is over {self.limits.max_cost} (estimated resolved fields)")
                if node.selection_set is not None:
                    page, named, inside = self._field_page(node, parent, introspection)
                    self.walk(node.selection_set, multiplier * page, stack, inside, named)
            elif isinstance(node, InlineFragmentNode):
                self.walk(node.selection_set, multiplier, stack, introspection,
                          self._fragment_type(node.type_condition, parent))
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                frag = self.fragments.get(name)
                if frag is None or name in stack:
                    continue  # unknown or cyclic: validation reports it
                self.walk(frag.selection_set, multiplier, stack + (name,), introspection,
                          self._fragment_type(frag.type_condition, parent))
