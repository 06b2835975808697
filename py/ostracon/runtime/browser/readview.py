"""The materialized read view: each collection's current documents in an IndexedDB object
store that plain JS reads without Pyodide (first paint, `Ostracon.peek` in web/readview.js).

Layout (object store ``view`` of the database ``ostracon:<name>``, created by web/bridge.js):
key ``[collection, id]`` → the document exactly as the JS API's `get` returns it (user fields
plus ``_id``, ``_collection``, ``_version``, ``_created``, ``_updated``, ``_deleted``,
``_heads``; values converted by `convert.to_js_value`). Deleted documents have no row. The
meta store's ``s/view`` (`VIEW_MARKER`) holds ``b"<VIEW_FORMAT>:<position>"``: the record
position the view reflects.

When rows are written: not with every batch of records (that would put the rows' cost
on every write), but when the worker asks for them (`IndexedDBStorage.request_view`): at an
explicit `flush()`, at `close()`, and at the worker's idle tick once writes have paused. Until
then the documents changed since the view's position wait in `ReadView.pending` (coalesced:
a document written 100 times gets one row), and the marker keeps the older position, so a
reader sees "stale" and never a view that claims records it does not reflect. A catch-up may
take several transactions (`limit` documents each, so the worker can answer calls between
them); the marker moves to the last stored position only with the transaction that settles
every pending document, and is removed by one that writes rows but leaves some pending.

Guarantees: rows are written in the same IndexedDB transaction as every record still queued
in storage, and only for documents whose every head block is stored or in that transaction
(a document with a head still in the sink's queue stays pending), so the view never shows a
document state whose blocks are not durable. A marker equal to ``s/last_position`` means
every document changed by a stored record has its row. A reader compares ``s/view`` with
``s/last_position``: when they differ (rows not yet caught up, a crash meanwhile, a database
written before the view existed, or a damaged marker) the view is not used, and the engine
rebuilds it at open (`needs_rebuild`, `all_rows`).

Not covered: the view is a cache of the engine's reads, not verified data: a reader that
must trust the values waits for the engine (which verifies the log at open).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...core import cid as cidlib
from ...core.block import KIND_BLOCK, open_envelope
from ...core.errors import ClosedError, CorruptBlockError, ValidationError
from ...core.state import DocState, flat_doc
from ...db.schemas import SCHEMA_COLLECTION
from .convert import MAX_SAFE_INTEGER, prepare

#: Version of the row and marker layout above; a reader refuses any other.
VIEW_FORMAT = 1
#: Meta key (in the adapter's own "s/" namespace) of the position the view reflects.
VIEW_MARKER = "s/view"
#: Documents read per scan page when the whole view is rebuilt (bounds one page's memory).
REBUILD_PAGE = 1000


def marker(position: int) -> bytes:
    """The ``s/view`` value for a view that reflects records up to `position`."""
    return f"{VIEW_FORMAT}:{position}".encode()


def parse_marker(raw: bytes | None) -> int | None:
    """The position a stored marker names, or None (missing, other format, damaged)."""
    if raw is None:
        return None
    try:
        fmt, _, pos = bytes(raw).decode("ascii").partition(":")
    except UnicodeDecodeError:
        return None
    if fmt != str(VIEW_FORMAT) or not pos.isascii() or not pos.isdigit() or len(pos) > 16:
        return None
    n = int(pos)
    return n if marker(n) == bytes(raw) else None  # exactly what `marker` writes, or nothing


@dataclass
class ViewRows:
    """What one transaction writes into the view: `puts` [(collection, id, doc)], `deletes`
    [(collection, id)], `clear` (empty the store first: a full rebuild)."""

    puts: list[tuple[str, str, dict]] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    clear: bool = False
    keys: set[tuple[str, str]] = field(default_factory=set)    # documents settled by these rows
    wanted: set[tuple[str, str]] = field(default_factory=set)  # documents asked for

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes or self.clear)


class ReadView:
    """Computes view rows from an open `Database`: for the documents storage records touch
    (`note`, then `rows`), or for every live document (`all_rows`)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        # Documents changed since their rows were last written (or left out of a transaction
        # because a head was still queued): written by a later `rows`.
        self.pending: set[tuple[str, str]] = set()

    def touched(self, records: Iterable[bytes]) -> set[tuple[str, str]]:
        """(collection, id) of every block among the storage records (envelopes)."""
        info = self.db.replica.info
        out = set()
        for rec in records:
            if len(rec) < 2 or rec[1] != KIND_BLOCK:
                continue
            try:
                payload = open_envelope(rec)[1]
            except CorruptBlockError:
                continue  # the engine never appends such a record; nothing to show for it
            bi = info.get(cidlib.compute(payload))
            if bi is not None:
                out.add((bi.collection, bi.doc_id))
        return out

    def note(self, records: Iterable[bytes]) -> None:
        """The documents these storage records touch need their rows (re)written."""
        self.pending |= self.touched(records)

    def _queued(self) -> set[bytes]:
        """CIDs of blocks applied in memory but not yet handed to storage."""
        out = set()
        for env in self.db.sink.queue:
            if len(env) > 1 and env[1] == KIND_BLOCK:
                out.add(cidlib.compute(open_envelope(env)[1]))
        return out

    def rows(self, records: Sequence[bytes] = (), limit: int | None = None) -> ViewRows:
        """Rows for the pending documents (after `note(records)`); at most `limit` of them
        (in key order), all when None."""
        self.note(records)
        keys = self.pending
        if limit is not None and len(keys) > limit:
            keys = set(sorted(keys)[:limit])
        return self._rows_for(set(keys), clear=False)

    def all_rows(self) -> ViewRows:
        """Rows for every live document (a rebuild: the store is cleared first)."""
        db = self.db
        keys: set[tuple[str, str]] = set()
        for name in db.collections():
            after = None
            while True:
                docs, after = db.collection(name).scan(after=after, limit=REBUILD_PAGE)
                keys.update((name, d["_id"]) for d in docs)
                if after is None:
                    break
        return self._rows_for(keys, clear=True)

    def settles(self, rows: ViewRows) -> bool:
        """Would committing `rows` leave no document pending (the view then reflects every
        stored record)?"""
        if rows.clear:  # a rebuild covers every live document: earlier changes are in it
            return rows.keys >= rows.wanted
        return rows.keys >= self.pending

    def _rows_for(self, keys: set[tuple[str, str]], clear: bool) -> ViewRows:
        out = ViewRows(clear=clear, wanted=keys)
        if not keys:
            return out
        db = self.db
        queued = self._queued() if db.sink.queue else set()
        replica = db.replica
        # Not `db.collections()`: rows are also made by the last flush of `close`, after the
        # database refuses calls; the schema versions' collection has no rows.
        visible = {n for n in replica.collections if n != SCHEMA_COLLECTION}
        registry = db.schemas
        lensed = {n for n in registry.names() if len(registry.history(n)) > 1}
        for col, doc_id in sorted(keys):
            state = replica.doc(col, doc_id) if col in visible else None
            if state is not None and queued and not queued.isdisjoint(state.heads):
                continue  # shown once its newest block is stored (see the module docstring)
            out.keys.add((col, doc_id))
            if state is None:
                continue  # reserved collections (schema versions) have no rows
            if state.deleted:
                out.deletes.append((col, doc_id))
            elif col in lensed:  # written under older schema versions: read through the lenses
                try:
                    doc = db.collection(col).get(doc_id)
                except ValidationError:
                    continue
                except ClosedError:  # the last flush of `close`: left pending, so the next
                    out.keys.discard((col, doc_id))  # open finds the view stale and rebuilds it
                    continue
                if doc is not None:
                    out.puts.append((col, doc_id, doc))
            else:
                out.puts.append((col, doc_id, read_form(state)))
        return out

    def committed(self, rows: ViewRows) -> None:
        """The transaction carrying `rows` completed: the documents it settled are no longer
        pending; those asked for but left out wait for a later transaction. (Never called for
        a transaction that aborted: nothing is forgotten.)"""
        if rows.clear:
            self.pending = rows.wanted - rows.keys
        else:
            self.pending = (self.pending | rows.wanted) - rows.keys


def read_form(state: DocState) -> dict:
    """The document as `Collection.get` returns it in a collection without lenses (both build
    it with `core.state.flat_doc`), without the copy a caller-facing read makes: the rows are
    converted to JS values at once."""
    return flat_doc(state, state.heads_text())


def _prepared(doc: dict, null: Any) -> dict:
    """`convert.prepare` of a document, with the common flat values handled inline (this runs
    for every document of every batch)."""
    out = {}
    for k, v in doc.items():
        t = type(v)
        if t is str or t is bool or t is float:
            out[k] = v
        elif t is int and -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
            out[k] = float(v)
        else:
            out[k] = prepare(v, null, 1)
    return out


def to_batch(rows: ViewRows, null: Any = None) -> dict:
    """The `view` part of a bridge write batch (web/bridge.js `idbWrite`), already prepared
    for `to_js` (`convert.prepare` rules; `null` is JS null)."""
    return {
        "clear": rows.clear,
        "putKeys": [[c, i] for c, i, _ in rows.puts],
        "putDocs": [_prepared(d, null) for _, _, d in rows.puts],
        "deleteKeys": [[c, i] for c, i in rows.deletes],
    }
