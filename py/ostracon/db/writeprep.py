"""Turning a caller's document into operations: metadata fields stripped (reads flatten
them beside the user fields, DESIGN §3), field names and map keys checked (no `.`: a dot is
a path, docs/MERGE.md), values brought to their canonical form."""

from __future__ import annotations

from typing import Any

from ..core.block import OP_SET, check_doc_id, check_write_field, check_write_keys
from ..core.encoding import canonical
from ..core.errors import ValidationError

SCALARS = (str, int, float, bool, type(None), bytes)
MISSING = object()

#: The metadata fields reads flatten beside the user fields (DESIGN §3); writes strip them.
META_FIELDS = frozenset({"_id", "_collection", "_version", "_created", "_updated", "_deleted", "_heads"})


def type_name(v: Any) -> str:
    return {bool: "boolean", str: "string", list: "list", dict: "map", bytes: "bytes",
            type(None): "null"}.get(type(v), type(v).__name__)


def strip_meta(doc: Any, collection: str, doc_id: str | None) -> tuple[Any, str | None]:
    """(doc without the metadata fields, the `_id` it carried). `_id` or `_collection` that
    contradict the call → ValidationError: a document read from elsewhere is not silently
    written over another one."""
    if type(doc) is not dict or not any(k in META_FIELDS for k in doc):
        return doc, None
    meta_id = doc.get("_id")
    if meta_id is not None:
        check_doc_id(meta_id)
        if doc_id is not None and meta_id != doc_id:
            raise ValidationError(f"the document's _id {meta_id!r:.80} is not {doc_id!r:.80}")
    col = doc.get("_collection")
    if col is not None and col != collection:
        raise ValidationError(f"the document's _collection {col!r:.80} is not {collection!r}")
    return {k: v for k, v in doc.items() if k not in META_FIELDS}, meta_id


def set_ops(doc: Any) -> list:
    if type(doc) is not dict:
        raise ValidationError(f"a document must be a dict, not {type(doc).__name__}")
    try:
        names = sorted(doc)
    except TypeError:
        raise ValidationError("field names must be str") from None
    ops = []
    for name in names:
        if type(name) is not str or not name or name[0] == "_" or len(name) > 256 or "." in name:
            check_write_field(name)  # raises the precise error
        v = doc[name]
        t = type(v)
        if t is float or t is int or t not in SCALARS:  # NaN/Inf, int limit; containers: full walk
            v = canonical(v)
            check_write_keys(v, name)
        ops.append((OP_SET, name, v))
    return ops

