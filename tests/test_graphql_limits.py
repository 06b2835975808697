"""graphql_limits: static token / alias / cost limits checked before a query runs."""

from __future__ import annotations

import pytest
from graphql import get_introspection_query

import ostracon
from ostracon.core.errors import ValidationError
from ostracon.graphql_limits import GraphQLLimits, QueryRejected, check_query

L = GraphQLLimits(max_tokens=500, max_aliases=3, max_cost=1000, max_page=100, unbounded_page=50)


def test_ordinary_queries_pass():
    check_query("{ Todo(limit: 10) { _docID title author { name } } }", None, L)
    check_query("query Q($n: Int) { Todo(limit: $n) { title } }", {"n": 20}, L)
    check_query("{ a: Todo(limit: 1) { title } b: Todo(limit: 1) { title } }", None, L)
    check_query("{ broken syntax", None, L)  # left to the executor's own error report


def test_alias_flood_is_refused_also_through_fragments():
    many = " ".join(f"a{i}: Todo(limit: 1) {{ title }}" for i in range(4))
    with pytest.raises(QueryRejected, match="aliases"):
        check_query("{ " + many + " }", None, L)
    frag = "fragment F on Query { x: Todo(limit: 1) { title } y: Todo(limit: 1) { title } }"
    with pytest.raises(QueryRejected, match="aliases"):
        check_query("{ ...F ...F } " + frag, None, L)


def test_cost_multiplies_page_sizes_and_assumes_unbounded_lists_are_large():
    check_query("{ Todo(limit: 100) { title done } }", None, L)  # 1 + 2 * 100
    with pytest.raises(QueryRejected, match="cost"):
        check_query("{ Todo(limit: 100) { a b c d e f g h i j k } }", None, L)  # 1 + 11 * 100
    with pytest.raises(QueryRejected, match="cost"):
        check_query("{ Todo { x { y { z } } } }", None, L)  # 50 * 50 for z
    with pytest.raises(QueryRejected, match="cost"):  # a huge limit counts as max_page
        check_query("query Q($n: Int) { Todo(limit: $n) { a b c d e f g h i j k } }", {"n": 10**9}, L)


def test_introspection_counts_its_single_object_fields_as_one():
    # Every field with a selection set used to count as an unbounded list, so even
    # `{ __schema { queryType { name } } }` (1 + 50 + 50 * 50) was refused.
    check_query("{ __schema { queryType { name } mutationType { name } } }", None, L)
    check_query('{ __type(name: "Todo") { name kind fields { name type { name kind ofType { name } } } } }',
                None, L)
    check_query("{ __schema { types { name kind } } }", None, L)
    # Its lists are still lists, and a user field named `type` outside introspection is too.
    with pytest.raises(QueryRejected, match="cost"):
        check_query("{ __schema { types { fields { args { name } } } } }", None, L)
    with pytest.raises(QueryRejected, match="cost"):
        check_query("{ Todo { type { ofType { name } } } }", None, L)


SDL = """
type Todo { title: String! done: Boolean author: Author tags: [String] }
type Author { name: String address: Address }
type Address { city: String }
"""


@pytest.fixture(scope="module")
def schema():
    with ostracon.open() as db:
        db.define_schema(SDL)
        db.collection("notes").create({"x": 1})  # a collection without a schema (JSON types)
        yield db.graphql_schema()


def test_with_the_schema_only_lists_multiply(schema):
    # Without the schema an embedded object counts as a list of 50 (50 * 50 > 1000) ...
    with pytest.raises(QueryRejected, match="cost"):
        check_query("{ Todo { author { address { city } } } }", None, L)
    # ... with it, one Todo page of 50 times one author and one address.
    check_query("{ Todo { author { address { city } } } }", None, L, schema=schema)
    check_query("{ ...F } fragment F on Query { Todo { ... on Todo { author { name } } } }", None, L, schema=schema)
    # Lists are still lists: 11 fields on a page of 100.
    with pytest.raises(QueryRejected, match="cost"):
        check_query("{ Todo(limit: 100) { title done tags author { name address { city } } "
                    "a: title b: title } }", None, GraphQLLimits(max_cost=500, max_page=100), schema=schema)
    # A field the schema does not know (the query is invalid anyway) counts as a list.
    with pytest.raises(QueryRejected, match="cost"):
        check_query("{ Todo { nope { x { y } } } }", None, L, schema=schema)


def test_with_the_schema_introspection_lists_are_the_schemas_own_sizes(schema):
    # A type's fields with their argument types: 50 * 50 * 50 estimated without the schema.
    q = '{ __schema { types { name fields { name args { name type { name ofType { name } } } } } } }'
    with pytest.raises(QueryRejected, match="cost"):
        check_query(q, None, GraphQLLimits(max_cost=50_000, unbounded_page=50))
    check_query(q, None, GraphQLLimits(max_cost=50_000, unbounded_page=50), schema=schema)
    # The GraphiQL query is bounded too (its estimate, not unbounded pages, decides).
    check_query(get_introspection_query(), None, GraphQLLimits(max_cost=200_000), schema=schema)
    with pytest.raises(QueryRejected, match="cost"):
        check_query(get_introspection_query(), None, GraphQLLimits(max_cost=200_000))
    # Introspection lists are bounded by the schema's own sizes, and still multiply.
    deep = "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }"
    with pytest.raises(QueryRejected, match="cost"):
        check_query(deep, None, GraphQLLimits(), schema=schema)


def test_token_cap_and_fragment_cycles():
    with pytest.raises(QueryRejected, match="tokens"):
        check_query("{ " + " ".join(f"f{i}" for i in range(600)) + " }", None, L)
    check_query("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }", None, L)


def test_limits_validate():
    with pytest.raises(ValidationError):
        GraphQLLimits(max_aliases=0)
    with pytest.raises(ValidationError):
        GraphQLLimits(time_budget_s=0)
