"""The write sink's public face: `send` (fire-and-forget), `send_sync`
(returns once durable) and `send_many`.

An op is a dict: `collection` (name), `kind` (create | update | patch | delete | upsert),
`doc` (the fields; not for delete), `id` (required except for create, where it is
generated when absent: ids are client-made, so `send` knows it at once) and, optionally,
`meta` (commit metadata for provenance, db/provenance.py). `send_many(ops, meta=...)` applies
a list of ops as one atomic batch (db/batch.py) and gives every op of it the same metadata
(an op's own `meta` wins).

`send` applies the write to memory like any write (validation and conflicts raise at
once) and returns the document id; the sink persists it within the durability contract
(docs/STORAGE.md). A failure to persist a sent write is never swallowed: it shows in
`db.sink_status` and the `on_sink_error` callback, and the next `flush()`/`send_sync()`
raises when the data is still not durable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.block import check_meta
from ..core.errors import OstraconError, ValidationError
from .batch import MAX_BATCH_OPS
from .locking import locked

if TYPE_CHECKING:
    from .collection import Collection
    from .engine import Engine

KINDS = ("create", "update", "patch", "delete", "upsert")


def check_op(op: Any, where: str = "op") -> tuple[str, str, dict | None, str | None, dict | None]:
    """(collection, kind, doc, id, meta) of a well-formed op; ValidationError otherwise."""
    if type(op) is not dict:
        raise ValidationError(f"{where} must be a dict with collection, kind, doc and id")
    unknown = set(op) - {"collection", "kind", "doc", "id", "meta"}
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
    meta = op.get("meta")
    if meta is not None:
        try:
            meta = check_meta(meta)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None
    return collection, kind, doc, doc_id, meta


class SendMixin:
    """`send`, `send_sync`, `send_many` for Database (uses `collection` and `flush`)."""

    _e: Engine  # Database's

    def collection(self, name: str) -> Collection:  # provided by Database
        raise NotImplementedError

    def flush(self) -> None:  # provided by Database
        raise NotImplementedError

    def provenance(self, meta: dict) -> contextlib.AbstractContextManager[Any]:  # Database
        raise NotImplementedError

    def _apply_op(self, collection: str, kind: str, doc: dict | None, doc_id: str | None,
                  meta: dict | None = None) -> str:
        if meta is not None:
            with self.provenance(meta):
                return self._apply_op(collection, kind, doc, doc_id)
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

    @locked
    def send_many(self, ops: Iterable[dict], *, meta: dict | None = None) -> list[str]:
        """Apply ops as one atomic batch; returns their ids, in order.

        All or nothing (db/batch.py): every op is checked for shape first (a malformed one
        raises ValidationError with `op_index` set to its position and the message beginning
        `op N`), then the ops are applied in order under the state lock, each seeing the
        ones before it (unique keys, preconditions, deletes). An op refused while applying
        raises its own typed error (ValidationError, ConflictError, NotFoundError, ...) with
        `op_index` set to its position and the message prefixed `op N:`; the database is
        then exactly as before the call: no block, head, index entry or change event of the
        batch remains. Once applied, readers of other threads, subscribers, the sink (one
        flush group, one seal) and sync peers see the whole batch, never a part. An empty
        batch does nothing.

        `meta`: commit metadata for every op of the batch (an op's own `meta` wins). At most
        MAX_BATCH_OPS ops (ValidationError beyond)."""
        checked = []
        for position, op in enumerate(ops):
            try:
                checked.append(check_op(op, f"op {position}"))
            except ValidationError as exc:
                exc.op_index = position
                raise
        batch = None if meta is None else check_meta(meta)
        if len(checked) > MAX_BATCH_OPS:
            raise ValidationError(f"a batch holds at most {MAX_BATCH_OPS} ops, not {len(checked)}")
        e = self._e
        e.check_writable()  # an empty batch too: after close every call raises ClosedError
        if not checked:
            return []
        # Open text editing bursts of the documents concerned are earlier writes, not part
        # of the batch: they are committed first, whatever becomes of the batch.
        for c, _, _, i, _ in checked:
            if i is not None:
                e.texts.commit_doc(c, i)
        ids: list[str] = []
        with e.atomic(len(checked)):
            for n, (c, k, d, i, m) in enumerate(checked):
                try:
                    ids.append(self._apply_op(c, k, d, i, m if m is not None else batch))
                except OstraconError as exc:
                    exc.op_index = n
                    if exc.args and type(exc.args[0]) is str:
                        exc.args = (f"op {n}: {exc.args[0]}", *exc.args[1:])
                    raise
        return ids
