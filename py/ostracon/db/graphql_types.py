"""GraphQL scalar types (JSON, Blob, DateTime) and the operator input blocks of filter arguments,
shared by every generated schema (graphql-core).

Scalars check their input like the engine does: a malformed literal or variable is a GraphQL
error, never a silently coerced value."""

from __future__ import annotations

from typing import Any, NoReturn

from graphql import (
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
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
    StringValueNode,
    ValueNode,
    value_from_ast_untyped,
)

from ..core.query.schema import _is_datetime

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

SCALAR_TYPES = {"String": GraphQLString, "Int": GraphQLInt, "Float": GraphQLFloat,
            "Boolean": GraphQLBoolean, "ID": GraphQLID, "DateTime": DateTime, "Blob": Blob,
            "Bytes": Blob, "JSON": JSON, "Text": GraphQLString}

Ordering = GraphQLEnumType("Ordering", {"ASC": "ASC", "DESC": "DESC"})


def meta_fields() -> dict[str, GraphQLField]:
    return {
        "_docID": GraphQLField(GraphQLID, resolve=lambda d, i: d.get("_id")),
        "_version": GraphQLField(GraphQLInt),
        "_created": GraphQLField(GraphQLFloat),
        "_updated": GraphQLField(GraphQLFloat),
        "_deleted": GraphQLField(GraphQLBoolean),
        "_heads": GraphQLField(GraphQLList(GraphQLString)),
    }


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


OPERATOR_BLOCKS = {
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
OPERATOR_BLOCKS["Bytes"] = OPERATOR_BLOCKS["Blob"]

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
    "meta": GraphQLField(JSON),
})
