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


def resolved_fields(value) -> int:
    """Fields in a GraphQL response's data: what the executor resolved."""
    if isinstance(value, dict):
        return len(value) + sum(resolved_fields(v) for v in value.values())
    if isinstance(value, list):
        return sum(resolved_fields(v) for v in value)
    return 0


def nested_introspection(levels: int) -> str:
    """Each level: a type's fields, and the type of each (through up to three wrappers), whose
    fields are the next level. The introspection types refer to each other
    (__Type.fields -> __Field.type -> __Type), so every level is as large as the schema."""
    frags = ["fragment L0 on __Type { name }"]
    for i in range(1, levels + 1):
        p = f"...L{i - 1}"
        frags.append(f"fragment L{i} on __Type {{ name fields {{ name type {{ {p} ofType {{ {p} "
                     f"ofType {{ {p} ofType {{ {p} }} }} }} }} }} }}")
    return f"{{ __schema {{ types {{ ...L{levels} }} }} }} " + " ".join(frags)


def test_with_the_schema_introspection_is_counted_as_the_schema_is(schema):
    assert len(schema.type_map) == 40
    # A type's fields with their argument types: 50 * 50 * 50 estimated without the schema.
    q = '{ __schema { types { name fields { name args { name type { name ofType { name } } } } } } }'
    with pytest.raises(QueryRejected, match="cost"):
        check_query(q, None, GraphQLLimits(max_cost=50_000, unbounded_page=50))
    check_query(q, None, GraphQLLimits(max_cost=50_000, unbounded_page=50), schema=schema)
    # GraphiQL's full introspection query passes the default limits; without the schema
    # every list counts as unbounded and it does not.
    check_query(get_introspection_query(), None, GraphQLLimits(), schema=schema)
    with pytest.raises(QueryRejected, match="cost"):
        check_query(get_introspection_query(), None, GraphQLLimits())


@pytest.mark.parametrize("query", [get_introspection_query(), get_introspection_query(descriptions=False),
                                   nested_introspection(1), nested_introspection(2),
                                   '{ __type(name: "Todo") { name fields { name type { ofType { name } } } } }',
                                   '{ __type(name: "Nope") { name fields { name } } __schema { queryType { name } } }'])
def test_the_introspection_estimate_is_the_count_the_executor_resolves(query):
    with ostracon.open() as db:
        db.define_schema(SDL)
        db.collection("notes").create({"x": 1})
        resolved = resolved_fields(db.graphql(query)["data"])
        schema = db.graphql_schema()
    check_query(query, None, GraphQLLimits(max_cost=resolved), schema=schema)
    with pytest.raises(QueryRejected, match="cost"):
        check_query(query, None, GraphQLLimits(max_cost=resolved - 1), schema=schema)


def test_nested_introspection_is_refused_by_its_real_size(schema):
    # Its count grows with the schema's own sizes, level by level, past the default limit.
    check_query(nested_introspection(4), None, GraphQLLimits(), schema=schema)
    with pytest.raises(QueryRejected, match="cost"):
        check_query(nested_introspection(6), None, GraphQLLimits(), schema=schema)
    # `__type` with a name known only from a variable counts as the most expensive type.
    q = "query Q($t: String!) { __type(name: $t) { fields { type { fields { name } } } } }"
    wide = GraphQLLimits(max_cost=10_000)
    assert cost_of(q, {"t": "Query"}, schema) <= cost_of(q, {}, schema)
    check_query(q, {"t": "Address"}, wide, schema=schema)


def cost_of(query: str, variables: dict, schema) -> int:
    """The smallest max_cost `query` passes (binary search over check_query)."""
    lo, hi = 1, 10**7
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            check_query(query, variables, GraphQLLimits(max_cost=mid), schema=schema)
            hi = mid
        except QueryRejected:
            lo = mid + 1
    return lo


def test_aliases_inside_introspection_are_counted(schema):
    q = "{ __schema { a: types { name } b: types { name } } }"
    check_query(q, None, GraphQLLimits(max_aliases=2), schema=schema)
    with pytest.raises(QueryRejected, match="aliases"):
        check_query(q, None, GraphQLLimits(max_aliases=1), schema=schema)
    frag = "fragment F on __Type { x: name y: name }"
    with pytest.raises(QueryRejected, match="aliases"):
        check_query("{ __schema { types { ...F ...F } } } " + frag, None, GraphQLLimits(max_aliases=3),
                    schema=schema)
    # Fragment cycles (refused by validation) end the count instead of looping.
    check_query("{ __schema { types { ...A } } } fragment A on __Type { ofType { ...B } } "
                "fragment B on __Type { ofType { ...A } }", None, GraphQLLimits(), schema=schema)


def test_token_cap_and_fragment_cycles():
    with pytest.raises(QueryRejected, match="tokens"):
        check_query("{ " + " ".join(f"f{i}" for i in range(600)) + " }", None, L)
    check_query("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }", None, L)


def test_limits_validate():
    with pytest.raises(ValidationError):
        GraphQLLimits(max_aliases=0)
    with pytest.raises(ValidationError):
        GraphQLLimits(time_budget_s=0)
