"""Documents to ops: the checks and op lists writes are built from (field names, canonical
values, `Text` values), and commits as `history()` describes them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core import cid as cidlib
from ..core import clock as hlc
from ..core.block import OP_SET, check_doc_id, check_write_field, check_write_keys, meta_text
from ..core.encoding import canonical
from ..core.errors import HistoryPrunedError, ValidationError
from ..core.query.schema import Schema
from ..core.replica import Replica
from ..core.state import DocState
from .text import Text

if TYPE_CHECKING:
    from .engine import Engine


def needs_heads(*parts: Any) -> bool:
    """Whether a filter/order mentions `_heads` (then internal views must carry it; else the
    costly CID formatting is done only for the returned page). False positives are harmless."""
    return any(_mentions_heads(p, 0) for p in parts)


def _mentions_heads(v: Any, depth: int) -> bool:
    # A walk, not repr(): repr of a huge int raises ValueError (Python's 4300-digit limit).
    if type(v) is str:
        return "_heads" in v
    if depth > 64:
        return False
    if isinstance(v, dict):
        return any(_mentions_heads(k, depth + 1) or _mentions_heads(x, depth + 1) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return any(_mentions_heads(x, depth + 1) for x in v)
    return False


def commit_info(replica: Replica, cid: bytes) -> dict:
    """One commit as `history()` reports it (signature status: verified, pending, unsigned)."""
    ch = replica.change(cid)
    sealed = ch.seq <= replica.sealed_upto.get(ch.actor, 0)
    if sealed:
        status = "verified"
    elif ch.actor == replica.actor or ch.actor in replica.stage_actors:
        status = "pending"  # not flushed yet: the seal is made at the next flush
    else:
        status = "unsigned"
    return {
        "cid": cidlib.format_cid(cid), "height": ch.height,
        "parents": [cidlib.format_cid(p) for p in ch.parents],
        "actor": ch.actor.hex(), "seq": ch.seq, "hlc": ch.hlc, "time": hlc.wall_ms(ch.hlc),
        "ops": [list(op) for op in ch.ops],
        "signature": {"status": status, "signer": ch.actor.hex() if sealed else None},
        "schema": None if ch.schema is None else cidlib.format_cid(ch.schema),
        "meta": meta_text(ch.meta),
    }


def commit_meta(replica: Replica, cid: bytes) -> dict | None:
    """The commit's metadata as JSON-ready values; None without any or when compaction
    pruned the block's body."""
    try:
        return meta_text(replica.change(cid).meta)
    except HistoryPrunedError:
        return None


_SCALARS = (str, int, float, bool, type(None), bytes)


def schema_texts(schema: Schema | None, doc: Any) -> Any:
    """A str written to a field whose schema type is Text becomes a `Text` value."""
    if schema is None or type(doc) is not dict:
        return doc
    out = None
    for k, v in doc.items():
        if type(v) is str and type(k) is str:
            f = schema.get_field(k)
            if f is not None and f.type.of is None and f.type.name == "Text":
                if out is None:
                    out = dict(doc)
                out[k] = Text(v)
    return doc if out is None else out


def split_texts(doc: Any) -> tuple[Any, dict[str, Text]]:
    """(the document with each `Text` value as its str — what schemas, unique indexes and
    validation see —, {field: Text})."""
    if type(doc) is not dict:
        return doc, {}
    texts = {k: v for k, v in doc.items() if type(v) is Text}
    if not texts:
        return doc, texts
    for k in texts:
        check_write_field(k)
    return {k: (v.initial if type(v) is Text else v) for k, v in doc.items()}, texts


def with_texts(engine: Engine, state: DocState | None, ops: list, texts: dict[str, Text]) -> list:
    """Replace the set ops of text fields by text ops (built last: every check has passed)."""
    if not texts:
        return ops
    out = [op for op in ops if op[1] not in texts]
    out.extend(engine.texts.text_op(state, f, texts[f]) for f in sorted(texts))
    return out


def set_ops(doc: Any) -> list:
    if type(doc) is not dict:
        raise ValidationError(f"a document must be a dict, not {type(doc).__name__}")
    try:
        names = sorted(doc)
    except TypeError:
        raise ValidationError("field names must be str") from None
    ops = []
    for name in names:
        if type(name) is not str or not name or name[0] in "_$" or len(name) > 256 or "." in name:
            check_write_field(name)  # raises the precise error
        v = doc[name]
        t = type(v)
        if t is float or t is int or t not in _SCALARS:  # NaN/Inf, int limit; containers: full walk
            v = canonical(v)
            check_write_keys(v, name)
        ops.append((OP_SET, name, v))
    return ops


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
