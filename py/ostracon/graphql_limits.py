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
  the usual "query cost analysis" of GraphQL servers (e.g. GitHub's node limit), done without
  the schema so it also covers lists the schema generator adds later. Inside ``__schema`` and
  ``__type`` the shape is the spec's own (GraphQL spec, "Schema Introspection"): the fields
  that return one object there (``queryType``, ``type``, ``ofType``, ...) count as pages of 1,
  so introspection is not mistaken for nested document lists.

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
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    parse,
)

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
                operation_name: str | None = None) -> None:
    """Raise :class:`QueryRejected` when ``query`` breaks a limit; return None otherwise.

    Syntax errors are left to the executor (it reports them in the GraphQL error format),
    except that a document past ``max_tokens`` is rejected here."""
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
    for op in ops:
        walker = _Walker(fragments, variables, limits)
        walker.walk(op.selection_set, 1, (), False)
        if walker.aliases > limits.max_aliases:
            raise QueryRejected(f"query uses {walker.aliases} aliases; at most {limits.max_aliases} are allowed")


class _Walker:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], variables: dict, limits: GraphQLLimits):
        self.fragments = fragments
        self.variables = variables
        self.limits = limits
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

    def walk(self, sel: SelectionSetNode, multiplier: int, stack: tuple[str, ...],
             introspection: bool) -> None:
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
                    inside = introspection or name in _INTROSPECTION_ROOTS
                    single = name in _INTROSPECTION_ROOTS or (introspection and name in _INTROSPECTION_SINGLE)
                    page = 1 if single else self._page(node)
                    self.walk(node.selection_set, multiplier * page, stack, inside)
            elif isinstance(node, InlineFragmentNode):
                self.walk(node.selection_set, multiplier, stack, introspection)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                frag = self.fragments.get(name)
                if frag is None or name in stack:
                    continue  # unknown or cyclic: validation reports it
                self.walk(frag.selection_set, multiplier, stack + (name,), introspection)
