"""Collection: the document API of one collection (reads, queries, indexes, tiers, schema,
history, writes). Writes go through the engine's write path (docs/STORAGE.md); queries run
through the planner over the collection's live documents (docs/QUERIES.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..core import cid as cidlib
from ..core import clock as hlc
from ..core.block import (
    OP_DELETE,
    OP_INCR,
    OP_SET,
    OP_UNSET,
    check_collection,
    check_doc_id,
    check_write_field,
)
from ..core.errors import (
    ClosedError,
    ConflictError,
    HistoryPrunedError,
    NotFoundError,
    ValidationError,
)
from ..core.query.filters import IndexBuildingError, compile_filter
from ..core.query.index import READY
from ..core.query.planner import QueryResult
from ..core.query.planner import execute as plan_execute
from ..core.query.planner import explain as plan_explain
from ..core.query.rebuild import COLD, HOT, WARM
from ..core.query.schema import Schema, SchemaValidationError, parse_sdl
from ..core.state import DocState, counter_add
from .docops import (
    MISSING,
    commit_info,
    needs_heads,
    schema_texts,
    set_ops,
    split_texts,
    strip_meta,
    type_name,
    with_texts,
)
from .locking import locked
from .text import TextHandle
from .views import DocViews, Source, own

if TYPE_CHECKING:
    from .database import Database
    from .engine import Engine

#: Default page size of `scan`: large enough for UIs, small enough to bound one call.
SCAN_LIMIT = 500


class Collection:
    """Documents of one collection. Get it with `db.collection(name)`.

    Queries (see docs/QUERIES.md): `find`, `find_page`, `explain`; secondary indexes:
    `create_index`, `drop_index`, `indexes`, `unique_violations`; tiers: `tier`,
    `set_tier`, `restore`; schema: `schema`, `set_schema`.
    """

    def __init__(self, db: Database, engine: Engine, name: str) -> None:
        self.db = db
        self.name = name
        self._e = engine
        self._replica = engine.replica
        self._views = DocViews(engine, name)
        self._src = Source(self._views)
        self._ksrc = Source(self._views, heads=False)  # for index builds and key-only work
        self._entry = engine.indexing.register(name, self._views, engine.now)
        self._ci = self._entry.ci
        self._views.refresh_schema(engine.schemas.registry)

    # ------------------------------------------------------------ views, access, tiers

    def note_id(self, doc_id: str) -> None:
        """A merged change may have brought a new document id: keep the id order current."""
        self._views.note_id(doc_id)

    def refresh_schema(self) -> None:
        """Pick up the current schema version (after schemas changed)."""
        self._views.refresh_schema(self._e.schemas.registry)

    def _access(self, kind: str) -> None:
        """Every read and write passes here: closed check, tier check (cold → refused, warm →
        indexes come back), last-access bookkeeping (with the last clock reading the
        database made: reads never call the clock, so scripted clocks stay deterministic)."""
        e = self._e
        if e.closed:
            raise ClosedError("the database is closed")
        if e.texts.open:  # reads and writes see every text edit as a committed block
            e.texts.commit_all()
        m = self._entry.meta
        if m.state != HOT:
            e.indexing.wake(self._entry, kind, e.now)
            m = self._entry.meta
        if e.now > m.last_access_ms:
            m.last_access_ms = e.now

    @property
    def tier(self) -> str:
        """"hot", "warm" or "cold" (see docs/QUERIES.md, Tiers)."""
        return self._entry.meta.state

    @locked
    def metadata(self) -> dict:
        """What the database records about this collection: tier, last access, index states."""
        self._e.indexing.sync_states(self._entry)
        return self._entry.meta.to_record()

    @locked
    def set_tier(self, tier: str) -> str:
        """Move the collection to `tier`. hot: indexes in memory; warm: index entries freed,
        rebuilt (under the throttle) on the next access; cold: reads, queries and local
        writes refused with ColdCollectionError until `restore()` (remote changes still merge)."""
        self._e.check_open()
        return self._e.indexing.set_tier(self._entry, tier, self._e.now)

    def restore(self) -> str:
        """Cold → warm: usable again; indexes come back on the next access."""
        state = self._entry.meta.state
        return self.set_tier(WARM if state == COLD else state)

    # ------------------------------------------------------------ reads

    def _state(self, doc_id: str) -> DocState | None:
        self._e.check_open()
        return self._replica.doc(self.name, doc_id)

    @locked
    def get(self, doc_id: str, at: str | list[str] | None = None, *,
            include_deleted: bool = False) -> dict | None:
        """The document, or None if it does not exist (or is deleted).

        `at`: a commit CID or a list of head CIDs: the document as it was then.
        """
        check_doc_id(doc_id)
        self._access("get")
        state = self._replica.doc(self.name, doc_id)
        if state is None:
            return None
        if at is not None:
            state = self._e.state_at(state, at)
        if state.deleted and not include_deleted:
            return None
        return own(self._views.view(state))

    @locked
    def get_many(self, ids: Iterable[str], *, include_deleted: bool = False) -> list[dict | None]:
        return [self.get(i, include_deleted=include_deleted) for i in ids]

    @locked
    def scan(self, prefix: str = "", after: str | None = None, limit: int = SCAN_LIMIT, *,
             include_deleted: bool = False) -> tuple[list[dict], str | None]:
        """Documents ordered by id, whose id starts with `prefix`, after the cursor `after`.

        Returns (docs, next_cursor); next_cursor is None at the end. Cursors are ids, so a
        scan stays consistent while writes happen (new ids after the cursor are included).
        """
        self._access("scan")
        if type(prefix) is not str:
            raise ValidationError("prefix must be a str")
        if type(limit) is not int or limit < 1:
            raise ValidationError("limit must be a positive int")
        docs, nxt = self._views.scan(prefix, after, limit, include_deleted)
        return [own(d) for d in docs], nxt

    @locked
    def count(self, *, include_deleted: bool = False) -> int:
        self._access("count")
        docs = self._views.states()
        if include_deleted:
            return len(docs)
        return sum(1 for d in docs.values() if not d.deleted)

    # The planner's DocSource contract, public (copies; the engine itself uses `_src`).
    @locked
    def iter_docs(self) -> Iterator[dict]:
        """Every visible document (any order), as copies."""
        self._access("scan")
        return iter([own(d) for d in self._src.iter_docs()])

    @locked
    def count_all(self) -> int:
        """Number of documents including tombstones (what a full scan steps over)."""
        self._access("count")
        return self._src.count_all()

    @locked
    def iter_by_id(self, after_id: str | None = None) -> Iterator[dict]:
        """Visible documents with `_id > after_id`, in id order, as copies."""
        self._access("scan")
        return iter([own(d) for d in self._src.iter_by_id(after_id)])

    # ------------------------------------------------------------ queries

    def _execute(self, filter: Any, order: Any, limit: Any, offset: Any, after: Any,
                 fallback_docs_max: int | None) -> QueryResult:
        """Plan and run a query. While an index it needs is being built and no scan within
        fallback_docs_max can answer, wait for the driver to finish it (up to
        `index_wait_ms`); without a driver, or nested in a callback, raise at once."""
        e = self._e
        deadline = None
        while True:
            self._access("query")
            fdm = e.fallback_docs_max if fallback_docs_max is None else fallback_docs_max
            src = self._src if needs_heads(filter, order) else self._ksrc
            try:
                return plan_execute(src, self._ci, filter, order, limit=limit,
                                    offset=0 if offset is None else offset, after=after,
                                    fallback_docs_max=fdm)
            except IndexBuildingError as exc:
                if e.driven and e.depth() == 1:
                    if deadline is None:
                        deadline = time.monotonic() + e.index_wait_ms / 1000
                    if e.wait_changed(deadline):
                        continue
                remaining = max(0, self._src.count_all() - exc.progress)
                exc.eta_ms = e.indexing.eta_ms(self.name, remaining)
                raise

    @locked
    def find(self, filter: dict | None = None, order: Any = None, limit: int | None = None,
             offset: int | None = None, after: str | None = None, *,
             fallback_docs_max: int | None = None) -> list[dict]:
        """Documents matching a DefraDB-style filter, ordered, paged (see docs/QUERIES.md).

        `after` is a cursor from `find_page`; the planner uses an index when one serves the
        filter or order, else scans (refused beyond `fallback_docs_max` documents,
        tombstones included, with QueryTooExpensiveError)."""
        return self._views.finish(self._execute(filter, order, limit, offset, after,
                                          fallback_docs_max).docs)

    @locked
    def find_page(self, filter: dict | None = None, order: Any = None, limit: int | None = None,
                  offset: int | None = None, after: str | None = None, *,
                  fallback_docs_max: int | None = None) -> tuple[list[dict], str | None]:
        """Like `find`, and the cursor of the next page (None on the last page). Pass it as
        `after=` with the same filter and order: keyset pagination, stable under writes."""
        r = self._execute(filter, order, limit, offset, after, fallback_docs_max)
        return self._views.finish(r.docs), r.next_cursor

    @locked
    def explain(self, filter: dict | None = None, order: Any = None, limit: int | None = None,
                offset: int | None = None, *, fallback_docs_max: int | None = None) -> dict:
        """Which path `find` would take (ids, index with bounds, id_scan, scan or refused)."""
        self._access("query")
        fdm = self._e.fallback_docs_max if fallback_docs_max is None else fallback_docs_max
        out = plan_explain(self._ksrc, self._ci, filter, order, limit=limit,
                           offset=0 if offset is None else offset, fallback_docs_max=fdm)
        return {"collection": self.name, "tier": self._entry.meta.state, **out}

    # ------------------------------------------------------------ indexes

    def create_index(self, fields: str | list[str] | tuple[str, ...], unique: bool = False,
                     name: str | None = None, *, wait: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> str:
        """Define a secondary index (dotted paths for nested fields); returns its name.

        Small collections (<= index_sync_build_docs documents) get it at once; larger ones
        get a rebuild job the driver steps under the throttle (state "building" until done;
        a query meanwhile scans within fallback_docs_max or waits up to `index_wait_ms`).
        wait=True returns only when the index is ready (without a driver it is built at
        once); `progress(done_docs, total_docs)` is called as it advances.
        A unique index over data that already holds a duplicate → ConflictError (checked at
        once for small collections; for large ones duplicates appear in unique_violations()).
        Idempotent for an identical definition."""
        e = self._e
        with e.lock:
            self._access("index")
            idx_name = e.indexing.create_index(self._entry, fields, unique, name, e.now)
            if not wait:
                return idx_name
            if e.depth() or not e.driven:
                e.indexing.build_now(self._entry)
                return idx_name
            if e.kick is not None:
                e.kick()
            total = self._views.count_all()
            while True:
                e.check_open()
                idx = self._ci.get(idx_name)
                if idx.state == READY:
                    if progress is not None:
                        progress(total, total)
                    return idx_name
                if progress is not None:
                    progress(min(total, e.indexing.progress(self.name)), total)
                e.changed.wait(1.0)

    @locked
    def drop_index(self, name: str) -> None:
        self._e.check_open()
        self._e.indexing.drop_index(self._entry, name)

    @locked
    def indexes(self) -> list[dict]:
        """name, fields, unique, state (ready | building | dropped) and entries of each index.
        Like every read, it wakes a warm collection first, so the entry counts are those of a
        hot one (never the zeros of freed index data)."""
        self._access("query")
        return self._ci.list_indexes()

    @locked
    def rebuild_indexes(self) -> None:
        """Rebuild every index from the documents (reason "manual")."""
        self._e.indexing.rebuild(self._entry, "manual", self._e.now)

    @locked
    def unique_violations(self) -> list[dict]:
        """Documents sharing a key of a unique index. Local writes cannot cause these
        (ConflictError); concurrent remote writes can, since a CRDT cannot refuse them. They
        stay listed until one side changes or deletes its document. Wakes a warm collection
        first (its unique maps were freed): the answer is the hot one."""
        self._access("query")
        out = []
        for v in self._ci.violations():
            idx = self._ci.get(v.index)
            out.append({"index": v.index, "fields": list(idx.definition.fields),
                        "values": list(v.values), "ids": list(v.doc_ids)})
        return out

    def schema_violations(self) -> list[dict]:
        """Live documents that break the current schema: `[{"id", "field", "error"}]` by id.

        Local writes are validated, so these come from merges: a replica that wrote under
        an older or newer schema version, or none. The documents stay readable and
        editable (a patch or update that makes them valid clears the entry); the change
        event of the merge that caused one lists it in `event.violations`."""
        self._access("query")
        sch = self._views.schema
        if sch is None:
            return []
        out = []
        states = self._views.states()
        for doc_id in sorted(states):
            state = states[doc_id]
            if state.deleted:
                continue
            err = self._schema_error(sch, state)
            if err is not None:
                out.append({"id": doc_id, "field": err.field, "error": str(err)})
        return out

    def _schema_error(self, sch: Schema, state: DocState) -> SchemaValidationError | None:
        try:
            sch.validate(self._views.user_view(state))
        except SchemaValidationError as exc:
            return exc
        return None

    def violations_of(self, state: DocState) -> tuple:
        """The rules a (merged) live document breaks: schema and unique keys, as
        `({"rule", "field", "error"}, ...)` (empty when it is valid)."""
        out: list[dict[str, Any]] = []
        sch = self._views.schema
        if sch is not None:
            err = self._schema_error(sch, state)
            if err is not None:
                out.append({"rule": "schema", "field": err.field, "error": str(err)})
        if len(self._ci) and self._has_unique():
            d = self._views.view(state, False)
            try:
                self._ci.check_unique(d, state.doc_id)
            except ConflictError as exc:
                out.append({"rule": "unique", "field": None, "error": str(exc)})
        return tuple(out)

    # ------------------------------------------------------------ schema

    @property
    def schema(self) -> Schema | None:
        """The current schema version of this collection (None: schemaless)."""
        return self._views.schema

    @locked
    def set_schema(self, sdl: str) -> str:
        """Register `sdl` (which must define `type <collection name>`); returns the version id."""
        defs = parse_sdl(sdl)
        if self.name not in defs:
            raise ValidationError(f"the SDL does not define type {self.name} "
                                  f"(it defines {', '.join(sorted(defs))})")
        return self.db.define_schema(sdl)[self.name]

    # ------------------------------------------------------------ history

    @locked
    def history(self, doc_id: str, *, allow_pruned: bool = False) -> list[dict]:
        """Every commit of the document, parents before children (height, clock, cid).

        If compaction pruned some of them, HistoryPrunedError is raised; with
        allow_pruned=True the kept commits are returned after one marker entry
        `{"pruned": n, "horizon": ms}` so a short history is never silent.
        """
        check_doc_id(doc_id)
        self._access("history")
        state = self._state(doc_id)
        if state is None:
            raise NotFoundError(f"{self.name}/{doc_id} does not exist")
        r = self._replica
        cids = state.cids
        marker = []
        if r.pruned:
            kept = [c for c in cids if c not in r.pruned]
            if len(kept) != len(cids):
                horizon = (r.checkpoint or {}).get("horizon")
                if not allow_pruned:
                    raise HistoryPrunedError(
                        f"{len(cids) - len(kept)} commit(s) of {self.name}/{doc_id} are older than "
                        f"the pruning horizon ({horizon}); pass allow_pruned=True for the rest")
                marker = [{"pruned": len(cids) - len(kept), "horizon": horizon}]
                cids = kept
        infos = [commit_info(r, c) for c in cids]
        infos.sort(key=lambda i: (i["height"], i["hlc"], i["cid"]))
        return marker + infos

    @locked
    def blame(self, doc_id: str) -> dict[str, dict]:
        """field -> the commit that wrote its current value."""
        check_doc_id(doc_id)
        self._access("history")
        state = self._state(doc_id)
        if state is None or state.deleted:
            raise NotFoundError(f"{self.name}/{doc_id} does not exist")
        return {f: {"cid": cidlib.format_cid(s[2]), "actor": s[1].hex(), "hlc": s[0],
                    "time": hlc.wall_ms(s[0])} for f, s in state.blame().items()}

    # ------------------------------------------------------------ collaborative text

    @locked
    def text(self, doc_id: str, field: str) -> TextHandle:
        """An editing handle on a text field (db/text.py): insert, delete, splice, str,
        cursors, blame. A field holding a plain str (or nothing) becomes a text holding that
        str at the first edit. Raises NotFoundError if the document does not exist."""
        check_doc_id(doc_id)
        check_write_field(field)
        self._access("write")
        self._live(doc_id)
        return TextHandle(self._e, self._e.texts, self.name, doc_id, field)

    # ------------------------------------------------------------ writes

    def _write(self, doc_id: str, ops: list) -> str:
        return cidlib.format_cid(self._e.write(self.name, doc_id, ops, self._views.schema_raw))

    def _live(self, doc_id: str) -> DocState:
        state = self._state(check_doc_id(doc_id))
        if state is None or state.deleted:
            raise NotFoundError(f"{self.name}/{doc_id} does not exist")
        return state

    def _check_cas(self, state: DocState, if_version: int | None, if_heads: Any, where: Any) -> None:
        if if_version is not None:
            if type(if_version) is not int:
                raise ValidationError("if_version must be an int")
            if state.version != if_version:
                raise ConflictError(f"{self.name}/{state.doc_id} is at version {state.version}, "
                                    f"not {if_version}")
        if if_heads is not None:
            if isinstance(if_heads, str):
                if_heads = [if_heads]
            want = {cidlib.parse_cid(h) for h in if_heads}
            if want != state.heads:
                raise ConflictError(f"{self.name}/{state.doc_id} heads have changed")
        if where is not None:
            if not compile_filter(where).match(self._views.view(state)):
                raise ConflictError(f"{self.name}/{state.doc_id} does not match the `where` condition")

    def _has_unique(self) -> bool:
        ci = self._ci
        return bool(len(ci)) and any(i.unique for i in ci)

    def _check_unique(self, fields: dict, doc_id: str, state: DocState | None = None) -> None:
        """The full resulting document against every unique index, before anything is
        written: a new duplicate → ConflictError and nothing changes. A key the write leaves
        as it is never refuses it (a merge may have made it a duplicate: that is reported by
        unique_violations(), and must not freeze the document)."""
        d = dict(fields)
        d["_id"] = doc_id
        current = None
        if state is not None and not state.deleted:
            current = self._views.view(state, False)
        self._ci.check_unique(d, doc_id, current)

    def _migration_ops(self, state: DocState) -> list | None:
        """Ops that rewrite a document written under an older schema version into the current
        one (the lens result), so a partial write never mixes old and new field shapes.
        None when the document is current (or there is no schema history)."""
        v = self._views
        if not v.lens or v.schema is None:
            return None
        sid = self._e.schemas.doc_schema_id(state)
        if sid is None or sid == v.schema.version_id:
            return None
        user = v.user_view(state)
        raw = state.user_fields()
        changed = {k: v for k, v in user.items()
                   if k not in raw or type(raw[k]) is not type(v) or raw[k] != v}
        ops = set_ops(changed)
        ops.extend((OP_UNSET, k) for k in raw if k not in user)
        return ops

    @locked
    def create(self, doc: dict, id: str | None = None) -> str:
        """Create a document; returns its id. An id of a live document → ConflictError.
        A `Text` value makes the field a collaborative text (see `text`).

        Metadata fields in `doc` (as `get` returns them) are ignored, except that `_id` is
        the id when `id` is not given, and `_id`/`_collection` contradicting the call are
        refused (ValidationError)."""
        doc, meta_id = strip_meta(doc, self.name, id)
        if id is None:
            id = meta_id
        doc, texts = split_texts(schema_texts(self._views.schema, doc))
        ops = set_ops(doc)
        e = self._e
        e.check_writable()
        check_collection(self.name)
        self._access("write")
        schema = self._views.schema
        if schema is not None:
            schema.validate(doc)
        if id is None:
            id = e.new_id()
        else:
            check_doc_id(id)
            state = self._replica.doc(self.name, id)
            if state is not None and not state.deleted:
                raise ConflictError(f"{self.name}/{id} already exists")
        if len(self._ci) and self._has_unique():
            self._check_unique(doc, id)
        state = self._replica.doc(self.name, id)
        is_new = state is None
        ops = with_texts(e, state, ops, texts)
        e.write(self.name, id, ops, self._views.schema_raw)
        if is_new:
            self._views.note_id(id)
        return id

    @locked
    def update(self, doc_id: str, doc: dict, *, if_version: int | None = None,
               if_heads: Any = None, where: Any = None) -> str:
        """Replace the user fields (fields not given are removed). Returns the commit CID.
        Metadata fields in `doc` are ignored, so `update(id, get(id))` works."""
        doc, _ = strip_meta(doc, self.name, check_doc_id(doc_id))
        doc, texts = split_texts(schema_texts(self._views.schema, doc))
        ops = set_ops(doc)
        self._e.check_writable()
        self._access("write")
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        schema = self._views.schema
        if schema is not None:
            schema.validate(doc)
        if len(self._ci) and self._has_unique():
            self._check_unique(doc, doc_id, state)
        given = {op[1] for op in ops} | set(texts)
        ops.extend((OP_UNSET, f) for f in state.user_fields() if f not in given)
        return self._write(doc_id, with_texts(self._e, state, ops, texts))

    @locked
    def patch(self, doc_id: str, fields: dict, *, unset: Iterable[str] = (),
              if_version: int | None = None, if_heads: Any = None, where: Any = None) -> str:
        """Set the given fields (and remove those in `unset`). Returns the commit CID.
        Metadata fields in `fields` are ignored. A field name never contains '.': to change
        a nested value, patch the whole top-level field."""
        fields, _ = strip_meta(fields, self.name, check_doc_id(doc_id))
        fields, texts = split_texts(schema_texts(self._views.schema, fields))
        ops = set_ops(fields)
        if isinstance(unset, str):
            raise ValidationError("unset must be a list of field names, not a str")
        unset = [check_write_field(f) for f in unset]
        if ({op[1] for op in ops} | set(texts)) & set(unset):
            raise ValidationError("a field cannot be both set and unset")
        self._e.check_writable()
        self._access("write")
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        sch = self._views.schema
        if sch is not None:
            sch.validate(fields, partial=True)
            for f in unset:
                fd = sch.get_field(f)
                if fd is not None and fd.type.required:
                    where_ = f"{sch.name}.{f}"
                    raise SchemaValidationError(f"{where_}: required ({fd.type}); it cannot be "
                                                f"removed", field=where_)
        if len(self._ci) and self._has_unique():
            result = self._views.user_view(state)
            result.update(fields)
            for f in unset:
                result.pop(f, None)
            self._check_unique(result, doc_id, state)
        unset_ops = [(OP_UNSET, f) for f in sorted(set(unset))]
        ops = with_texts(self._e, state, ops, texts)
        mig = self._migration_ops(state)
        if mig:
            merged = {op[1]: op for op in mig}
            merged.update((op[1], op) for op in ops)
            merged.update((op[1], op) for op in unset_ops)
            ops = [merged[k] for k in sorted(merged)]
        else:
            ops.extend(unset_ops)
        return self._write(doc_id, ops)

    @locked
    def upsert(self, doc_id: str, fields: dict) -> str:
        """Create the document with `fields` when it does not exist (or is deleted), else
        set the given fields (like `patch`). Returns the commit CID."""
        check_doc_id(doc_id)
        self._access("write")
        state = self._replica.doc(self.name, doc_id)
        if state is None or state.deleted:
            self.create(fields, id=doc_id)
            state = self._replica.doc(self.name, doc_id)
            assert state is not None
            return self._e.heads_text(state.heads)[0]
        return self.patch(doc_id, fields)

    @locked
    def delete(self, doc_id: str, *, if_version: int | None = None, if_heads: Any = None,
               where: Any = None) -> str:
        """Tombstone the document (history is kept). Returns the commit CID."""
        self._e.check_writable()
        self._access("write")
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        return self._write(doc_id, [(OP_DELETE,)])

    @locked
    def increment(self, doc_id: str, field: str, by: int | float = 1) -> str:
        """Add `by` to a counter field (concurrent increments all count). The field must be
        absent (it starts from 0) or hold a number: a string, bool, list, map, bytes or null
        → ValidationError, and nothing is written."""
        check_write_field(field)
        if type(by) not in (int, float) or by != by or by in (float("inf"), float("-inf")):
            raise ValidationError("increment must be a finite int or float")
        if type(by) is int and not -(2**63) <= by < 2**63:
            raise ValidationError("increment must fit in 64 bits")
        self._e.check_writable()
        self._access("write")
        state = self._live(doc_id)
        schema = self._views.schema
        if schema is not None:
            schema.validate_increment(field, by)
        cur = self._views.user_view(state).get(field, MISSING)
        if cur is not MISSING and type(cur) not in (int, float):
            raise ValidationError(f"{self.name}/{doc_id}: cannot increment {field!r}: it holds "
                                  f"a {type_name(cur)}, not a number")
        if cur is not MISSING and counter_add(cur, by) is None:
            raise ValidationError(f"incrementing {field} by {by!r} leaves the counter range (ints in "
                                  f"[-2**63, 2**63-1], finite floats): refused")
        ops: list = [(OP_INCR, field, by)]
        mig = self._migration_ops(state)
        if mig:
            # A set and an increment of one field in one block share a stamp, and the
            # increment would not count (it must be stamped after the base): fold it in.
            setter = next((op for op in mig if op[1] == field and op[0] == OP_SET), None)
            if setter is not None and type(setter[2]) in (int, float):
                mig = [op for op in mig if op is not setter] + [(OP_SET, field, setter[2] + by)]
                ops = []
            ops = mig + ops
        if len(self._ci) and self._has_unique():
            result = self._views.user_view(state)
            cur = result.get(field)
            result[field] = (cur if type(cur) is int or type(cur) is float else 0) + by
            self._check_unique(result, doc_id, state)
        return self._write(doc_id, ops)
