"""Field names and paths a query may use, and the query operator vocabulary. PURE.

A path is a tuple of map keys; missing values and non-map intermediates read as None (queries
treat missing and null alike). Metadata fields (`_id` …) are valid only at the top level."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import IndexBuildingError, OstraconError, QueryCursorError, QueryTooExpensiveError, ValidationError  # noqa: F401  (re-exported)

# Metadata the engine adds to every document; the only `_` names a filter or order may use.
METADATA_FIELDS = frozenset({"_id", "_collection", "_version", "_created", "_updated", "_deleted",
                             "_heads"})
# DefraDB spells the document id `_docID`; accept it so DefraDB queries port unchanged.
FIELD_ALIASES = {"_docID": "_id"}

COMPARE_OPS = frozenset({"_gt", "_ge", "_lt", "_le"})
LIKE_OPS = frozenset({"_like", "_nlike", "_ilike", "_nilike"})
FIELD_OPS = frozenset({"_eq", "_ne", "_in", "_nin"}) | COMPARE_OPS | LIKE_OPS
LOGICAL_OPS = frozenset({"_and", "_or", "_not"})
MAX_PATH_DEPTH = 16        # nested field path length
# --------------------------------------------------------------------------------------
# Paths

def dollar_error(key: str, path: tuple) -> ValidationError:
    """A `$` name is a MongoDB-style operator: refused, never read as a field name (a filter
    `{"done": {"$eq": true}}` would otherwise quietly look for a field called `$eq`)."""
    hint = f"_{key[1:]}"
    known = FIELD_OPS | LOGICAL_OPS
    tip = f"; the operator here is {hint}" if hint in known else ""
    where = show_path(path) if path else "filter"
    return ValidationError(f"{where}: {key!r}: '$' operators are MongoDB syntax, not Ostracon's{tip}")


def parse_path(name: str, where: str, *, root: bool) -> tuple[str, ...]:
    """Split a (possibly dotted) field name into a path and validate each part."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{where}: field names must be non-empty strings")
    if root and name in FIELD_ALIASES:
        return (FIELD_ALIASES[name],)
    if root and name in METADATA_FIELDS:
        return (name,)
    parts = tuple(name.split("."))
    for p in parts:
        if not p:
            raise ValidationError(f"{where}: empty path segment in {name!r}")
        if p[0] == "$":
            raise dollar_error(p, ())
        if p.startswith("_"):
            raise ValidationError(
                f"{where}.{name}: names beginning with '_' are reserved "
                f"(only the metadata fields {sorted(METADATA_FIELDS)} at the top level)")
    if len(parts) > MAX_PATH_DEPTH:
        raise ValidationError(f"{where}: path {name!r} is deeper than {MAX_PATH_DEPTH}")
    return parts


def get_path(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`, or None when missing (missing and null are the same to queries)."""
    v = doc
    for p in path:
        if type(v) is not dict:
            return None
        v = v.get(p)
    return v


def make_getter(path: tuple[str, ...]) -> Callable[[dict], Any]:
    if len(path) == 1:
        f = path[0]
        return lambda d: d.get(f)
    if len(path) == 2:
        a, b = path

        def g2(d: dict) -> Any:
            v = d.get(a)
            return v.get(b) if type(v) is dict else None
        return g2
    return lambda d: get_path(d, path)


def show_path(path: tuple[str, ...]) -> str:
    return "filter" + "".join("." + p for p in path)
