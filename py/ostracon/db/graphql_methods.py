"""The generated GraphQL API as methods of `Database` (docs/QUERIES.md): `graphql()` runs a
request, `graphql_schema()` is the schema it runs against. The API itself is db/graphql.py,
imported on first use.

A mixin of `Database` (its state lives in `Database.__init__`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import OstraconError
from .locking import locked

if TYPE_CHECKING:
    from ..core.query.schema_registry import SchemaRegistry
    from .engine import Engine


class GraphQLMethods:
    """GraphQL methods of `Database`."""

    _engine: Engine
    _gql: dict[bool, Any]

    @property
    def schemas(self) -> SchemaRegistry:   # provided by Database
        raise NotImplementedError

    def collections(self) -> list[str]:   # provided by Database
        raise NotImplementedError

    @locked
    def graphql(self, query: str, variables: dict | None = None, *, allow_mutations: bool = True,
                operation_name: str | None = None,
                check: Callable[[Any], None] | None = None) -> dict:
        """Run a GraphQL request against the API generated from the schemas (see
        docs/QUERIES.md): `{"data": ..., "errors": [...]}` as the spec shapes it; errors
        carry messages and paths, never a traceback.

        `check`: called with the graphql-core `GraphQLSchema` the request is about to run
        against (the one `graphql_schema()` returns), before it runs and under the same lock,
        so a static check (such as `ostracon serve`'s cost limit) sees exactly that schema;
        what it raises propagates and the request does not run. Not called when no schema
        can be built (the answer then carries that error)."""
        self._engine.check_open()
        try:
            api = self._graphql_api(allow_mutations)
        except OstraconError as e:
            return {"errors": [{"message": f"{type(e).__name__}: {e}"}]}
        if check is not None:
            check(api.schema)
        return api.execute(query, variables, operation_name)

    @locked
    def graphql_schema(self, *, allow_mutations: bool = True) -> Any:
        """The graphql-core `GraphQLSchema` that `graphql()` runs requests against now (for
        tools; a check of one request takes the schema through `graphql(check=...)`). Raises
        what building it raises (SchemaError for a schema GraphQL cannot express)."""
        self._engine.check_open()
        return self._graphql_api(allow_mutations).schema

    def _graphql_api(self, allow_mutations: bool) -> Any:
        # Collections without a schema are exposed with JSON types: the API is rebuilt when
        # that set changes (schema changes clear the cache).
        loose = tuple(n for n in self.collections() if n not in self.schemas.names())
        cached = self._gql.get(bool(allow_mutations))
        api = cached[1] if cached is not None and cached[0] == loose else None
        if api is None:
            from .graphql import DatabaseBackend, GraphQLAPI
            api = GraphQLAPI(self.schemas, DatabaseBackend(self), allow_mutations=bool(allow_mutations), loose=loose)
            self._gql[bool(allow_mutations)] = (loose, api)
        return api
