"""graphql_limits: static token / alias / cost limits checked before a query runs."""

from __future__ import annotations

import pytest

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


def test_token_cap_and_fragment_cycles():
    with pytest.raises(QueryRejected, match="tokens"):
        check_query("{ " + " ".join(f"f{i}" for i in range(600)) + " }", None, L)
    check_query("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }", None, L)


def test_limits_validate():
    with pytest.raises(ValidationError):
        GraphQLLimits(max_aliases=0)
    with pytest.raises(ValidationError):
        GraphQLLimits(time_budget_s=0)
