"""The write sink's public face: `send` (fire-and-forget), `send_sync`
(returns once durable) and `send_many`.

An op is a dict: `collection` (name), `kind` (create | update | patch | delete | upsert),
`doc` (the fields; not for delete) and `id` (required except for create, where it is
generated when absent: ids are client-made, so `send` knows it at once).

`send` applies the write to memory like any write (validation and conflicts raise at
once) and returns the document id; the sink persists it within the durability contract
(docs/STORAGE.md). A failure to persist a sent write is never swallowed: it shows in
`db.sink_status` and the `on_sink_error` callback, and the next `flush()`/`send_sync()`
raises when the data is still not durable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.errors import ValidationError

if TYPE_CHECKING:
    from .collection import Collection

KINDS = ("create", "update", "patch", "delete", "upsert")


def check_op(op: Any, where: str = "op") -> tuple[str, str, dict | None, str | None]:
    """(collection, kind, doc, id) of a well-formed op; ValidationError otherwise."""
    if type(op) is not dict:
        raise ValidationError(f"{where} must be a dict with collection, kind, doc and id")
    unknown = set(op) - {"collection", "kind", "doc", "id"}
    if unknown:
        raise ValidationError(f"{where} has unknown keys: {sorted(map(str, unknown))}")
    collection, kind, doc, doc_id = op.get("collection"), op.get("kind"), op.get("doc"), op.get("id")
    if type(collection) is not str:
        raise ValidationError(f"{where}: collection must be a str")
    if kind not in KINDS:
        raise ValidationError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r:.40}")
    if kind == "delete":
        if doc is not None:
            raise ValidationError(f"{where}: a delete takes no doc")
    elif type(doc) is not dict:
        raise ValidationError(f"{where}: doc must be a dict")
    if doc_id is None and kind != "create":
        raise ValidationError(f"{where}: {kind} needs an id")
    if doc_id is not None and type(doc_id) is not str:
        raise ValidationError(f"{where}: id must be a str")
    return collection, kind, doc, doc_id


class SendMixin:
    """`send`, `send_sync`, `send_many` for Database (uses `collection` and `flush`)."""

    def collection(self, name: str) -> Collection:  # provided by Database
        raise NotImplementedError

    def flush(self) -> None:  # provided by Database
        raise NotImplementedError

    def _apply_op(self, collection: str, kind: str, doc: dict | None, doc_id: str | None) -> str:
        col = self.collection(collection)
        if kind == "create":
            return col.create(doc or {}, id=doc_id)
        assert doc_id is not None
        if kind == "update":
            col.update(doc_id, doc or {})
        elif kind == "patch":
            col.patch(doc_id, doc or {})
        elif kind == "delete":
            col.delete(doc_id)
        else:
            col.upsert(doc_id, doc or {})
        return doc_id

    def send(self, op: dict) -> str:
        """Apply one op now (memory first) and return its document id without waiting for
        the disk. Raises what the write raises (ValidationError, ConflictError,
        NotFoundError, ClosedError, ...)."""
        return self._apply_op(*check_op(op))

    def send_sync(self, op: dict) -> str:
        """Like `send`, then wait until the write (and every earlier one) is durable;
        raises StorageError when it is not."""
        doc_id = self.send(op)
        self.flush()
        return doc_id

    def send_many(self, ops: Iterable[dict]) -> list[str]:
        """Apply ops in order; returns their ids. Every op is checked for shape before any
        is applied; an op refused while applying raises, the ops before it stay applied."""
        checked = [check_op(op, f"op {i}") for i, op in enumerate(ops)]
        return [self._apply_op(*c) for c in checked]
