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
  type is a list multiply: an embedded object (``author { name }``) counts as one. Introspection
  (``__schema``, ``__type``) is counted against the schema itself, value by value: ``types``
  is each of its types, ``fields`` that type's own fields, ``args`` that field's own arguments,
  ``ofType`` the type a wrapper wraps (null for a named type), and so on (GraphQL spec,
  "Schema Introspection"), so the estimate is the number of fields the executor resolves
  (deprecated members included even when not asked for: an upper bound). GraphiQL's full
  introspection query of a 40-type schema counts 2,914, well within the default ``max_cost``,
  while nesting that walks the introspection types' own cycle (``__Type.fields`` →
  ``__Field.type`` → ``__Type``) grows with the real size of each level and is refused.
  Counts are memoized per (selection, schema element) and stop just past ``max_cost``, so
  this part of the check is bounded by the query's size times the schema's.
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
    GraphQLEnumType,
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
    intro = None if schema is None else _Introspection(schema, fragments, variables, limits)
    for op in ops:
        walker = _Walker(fragments, variables, limits, shape, intro)
        root = None if shape is None else shape.root(op.operation.value)
        walker.walk(op.selection_set, 1, (), False, root)
        if walker.aliases > limits.max_aliases:
            raise QueryRejected(f"query uses {walker.aliases} aliases; at most {limits.max_aliases} are allowed")


class _SchemaShape:
    """What the walk needs of a schema: each field's type."""

    def __init__(self, schema: GraphQLSchema):
        self.schema = schema

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
                 shape: _SchemaShape | None = None, intro: _Introspection | None = None):
        self.fragments = fragments
        self.variables = variables
        self.limits = limits
        self.shape = shape
        self.intro = intro
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
                if node.selection_set is not None and self.intro is not None and name in _INTROSPECTION_ROOTS:
                    # Counted against the schema itself (module docstring); its aliases too.
                    self.cost += multiplier * self.intro.below(node)
                    self.aliases += self.intro.aliases(node.selection_set)
                    if self.aliases > self.limits.max_aliases:
                        raise QueryRejected(f"query uses more than {self.limits.max_aliases} aliases")
                if self.cost > self.limits.max_cost:
                    raise QueryRejected(f"query cost is over {self.limits.max_cost} (estimated resolved fields)")
                if node.selection_set is not None and (self.intro is None or name not in _INTROSPECTION_ROOTS):
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


# The introspection types (GraphQL spec, "Schema Introspection") as `_Introspection` walks them:
# for each field with a selection set, the introspection type of its values.
_META_CHILD = {
    "__Schema": {"types": "__Type", "queryType": "__Type", "mutationType": "__Type",
                 "subscriptionType": "__Type", "directives": "__Directive"},
    "__Type": {"fields": "__Field", "interfaces": "__Type", "possibleTypes": "__Type",
               "enumValues": "__EnumValue", "inputFields": "__InputValue", "ofType": "__Type"},
    "__Field": {"args": "__InputValue", "type": "__Type"},
    "__InputValue": {"type": "__Type"},
    "__Directive": {"args": "__InputValue"},
}
_UNKNOWN = "?"  # a field introspection does not have: the query is invalid, counted syntactically


class _Introspection:
    """Resolved fields of introspection selections, counted against the schema's own elements
    (module docstring). Counts saturate just above their limits (only "over" matters), and
    are memoized per (selection set, introspection type, schema element), so a selection that
    nested fragments reach many times is counted once per element."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict, limits: GraphQLLimits):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.cap = limits.max_cost
        self.alias_cap = limits.max_aliases
        self.types = list(schema.type_map.values())   # what `__schema { types }` lists
        self._memo: dict[tuple[int, str, int], int] = {}
        self._alias_memo: dict[int, int] = {}

    def below(self, node: FieldNode) -> int:
        """Fields resolved inside `__schema { ... }` / `__type(name: ...) { ... }` (not
        counting the field itself)."""
        sel = node.selection_set
        assert sel is not None
        if node.name.value == "__schema":
            return self._count(sel, "__Schema", self.schema, set())
        named = self._type_name(node)
        if named is None:   # not known statically: the most expensive type bounds it
            return max((self._count(sel, "__Type", t, set()) for t in self.types), default=0)
        target = self.schema.get_type(named)
        return 0 if target is None else self._count(sel, "__Type", target, set())

    def _type_name(self, node: FieldNode) -> str | None:
        for arg in node.arguments or ():
            if arg.name.value == "name":
                v: object = getattr(arg.value, "value", None)
                if isinstance(arg.value, VariableNode):
                    v = self.variables.get(arg.value.name.value)
                return v if isinstance(v, str) else None
        return None

    def _children(self, kind: str, value: object, name: str) -> list:
        """The values of field `name` of introspection object `value` (of type `kind`)."""
        if kind == "__Schema":
            assert isinstance(value, GraphQLSchema)
            if name == "types":
                return self.types
            if name == "directives":
                return list(value.directives)
            root = {"queryType": value.query_type, "mutationType": value.mutation_type,
                    "subscriptionType": value.subscription_type}.get(name)
            return [] if root is None else [root]
        if kind == "__Type":
            if name == "ofType":
                inner = getattr(value, "of_type", None)   # wrappers only
                return [] if inner is None else [inner]
            if name in ("fields", "interfaces") and isinstance(value, (GraphQLObjectType, GraphQLInterfaceType)):
                return list(value.fields.values()) if name == "fields" else list(value.interfaces)
            if name == "possibleTypes" and isinstance(value, (GraphQLInterfaceType, GraphQLUnionType)):
                return list(self.schema.get_possible_types(value))
            if name == "enumValues" and isinstance(value, GraphQLEnumType):
                return list(value.values.values())
            if name == "inputFields" and isinstance(value, GraphQLInputObjectType):
                return list(value.fields.values())
            return []
        if name == "type":   # __Field, __InputValue
            return [getattr(value, "type", None)]
        if name == "args":   # __Field, __Directive
            args = getattr(value, "args", None)
            return list(args.values()) if isinstance(args, dict) else []
        return []

    def _count(self, sel: SelectionSetNode, kind: str, value: object, active: set[str]) -> int:
        key = (id(sel), kind, id(value))
        found = self._memo.get(key)
        if found is not None:
            return found
        total = 0
        for node in sel.selections:
            if isinstance(node, FieldNode):
                total += 1
                if node.selection_set is not None:
                    child = _META_CHILD.get(kind, {}).get(node.name.value, _UNKNOWN)
                    values = [None] if child == _UNKNOWN else self._children(kind, value, node.name.value)
                    for v in values:
                        total += self._count(node.selection_set, child, v, active)
                        if total > self.cap:
                            break
            else:
                inner = self._fragment(node, active)
                if inner is not None:
                    name, frag_sel = inner
                    active.add(name)   # "" for an inline fragment, never a fragment's name
                    total += self._count(frag_sel, kind, value, active)
                    active.discard(name)
            if total > self.cap:
                total = self.cap + 1
                break
        self._memo[key] = total
        return total

    def _fragment(self, node: object, active: set[str]) -> tuple[str, SelectionSetNode] | None:
        """(fragment name or "", its selection set) of an inline fragment or a spread; None for
        an unknown or cyclic spread (validation refuses the query)."""
        if isinstance(node, InlineFragmentNode):
            return "", node.selection_set
        if isinstance(node, FragmentSpreadNode):
            name = node.name.value
            frag = self.fragments.get(name)
            if frag is not None and name not in active:
                return name, frag.selection_set
        return None

    def aliases(self, sel: SelectionSetNode, active: set[str] | None = None) -> int:
        """Aliased fields in `sel`, fragments counted per use (as the main walk counts them)."""
        active = set() if active is None else active
        found = self._alias_memo.get(id(sel))
        if found is not None:
            return found
        total = 0
        for node in sel.selections:
            if isinstance(node, FieldNode):
                total += node.alias is not None
                if node.selection_set is not None:
                    total += self.aliases(node.selection_set, active)
            else:
                inner = self._fragment(node, active)
                if inner is not None:
                    name, frag_sel = inner
                    active.add(name)   # "" for an inline fragment, never a fragment's name
                    total += self.aliases(frag_sel, active)
                    active.discard(name)
            total = min(total, self.alias_cap + 1)
        self._alias_memo[id(sel)] = total
        return total
