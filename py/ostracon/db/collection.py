"""Collection: the document API of one collection (reads, queries, indexes, tiers, schema,
history; writes come from the `CollectionWrites` mixin in collection_writes.py). Writes go
through the engine's write path (docs/STORAGE.md); queries run through the planner over the
collection's live documents (docs/QUERIES.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..core import cid as cidlib
from ..core import clock as hlc
from ..core.block import (
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
from ..core.query.filters import IndexBuildingError
from ..core.query.index import READY
from ..core.query.planner import QueryResult
from ..core.query.planner import execute as plan_execute
from ..core.query.planner import explain as plan_explain
from ..core.query.rebuild import COLD, HOT, WARM
from ..core.query.schema import Schema, SchemaValidationError
from ..core.query.sdl import parse_sdl
from ..core.state import DocState
from .collection_writes import CollectionWrites
from .docops import (
    commit_info,
    commit_meta,
    needs_heads,
)
from .locking import locked
from .text import TextHandle
from .views import DocViews, Source, own

if TYPE_CHECKING:
    from .database import Database
    from .engine import Engine

#: Default page size of `scan`: large enough for UIs, small enough to bound one call.
SCAN_LIMIT = 500


class Collection(CollectionWrites):
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

    @locked
    def refresh_schema(self) -> None:
        """Pick up the current schema version (after schemas changed)."""
        self._views.refresh_schema(self._e.schemas.registry)

    def _access(self) -> None:
        """Every read and write passes here: closed check, tier (a warm or cold collection
        becomes hot: indexes come back, so the answer is the hot one), last-access
        bookkeeping (with the last clock reading the database made: reads never call the
        clock, so scripted clocks stay deterministic)."""
        e = self._e
        if e.closed:
            raise ClosedError("the database is closed")
        if e.texts.open:  # reads and writes see every text edit as a committed block
            e.texts.commit_all()
        m = self._entry.meta
        if m.state != HOT:
            e.indexing.wake(self._entry, e.now)
            m = self._entry.meta
            if e.kick is not None and not e.indexing.idle():
                e.kick()  # a throttled rebuild was scheduled: the driver steps it from now
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
        """Move the collection to `tier` (returns it). hot: indexes in memory; warm: index
        entries freed; cold: the id order freed too. A tier changes memory, never answers:
        the next read or write of a warm or cold collection makes it hot again (indexes
        rebuilt at once when small, else under the throttle). Remote changes merge in every
        tier. Raises ValidationError for another tier name."""
        self._e.check_open()
        return self._e.indexing.set_tier(self._entry, tier, self._e.now)

    @locked
    def restore(self) -> str:
        """Cold → warm ahead of use (any access does this by itself); indexes come back on
        the next access. Returns the tier."""
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
        self._access()
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
        self._access()
        if type(prefix) is not str:
            raise ValidationError("prefix must be a str")
        if after is not None and type(after) is not str:
            raise ValidationError("after must be a str (a document id) or None")
        if type(limit) is not int or limit < 1:
            raise ValidationError("limit must be a positive int")
        docs, nxt = self._views.scan(prefix, after, limit, include_deleted)
        return [own(d) for d in docs], nxt

    @locked
    def count(self, *, include_deleted: bool = False) -> int:
        self._access()
        docs = self._views.states()
        if include_deleted:
            return len(docs)
        return len(docs) - DocState.count_deleted(docs.values())

    # The planner's DocSource contract, public (copies; the engine itself uses `_src`).
    @locked
    def iter_docs(self) -> Iterator[dict]:
        """Every visible document (any order), as copies."""
        self._access()
        return iter([own(d) for d in self._src.iter_docs()])

    @locked
    def count_all(self) -> int:
        """Number of documents including tombstones (what a full scan steps over)."""
        self._access()
        return self._src.count_all()

    @locked
    def iter_by_id(self, after_id: str | None = None) -> Iterator[dict]:
        """Visible documents with `_id > after_id`, in id order, as copies."""
        self._access()
        return iter([own(d) for d in self._src.iter_by_id(after_id)])

    # ------------------------------------------------------------ queries

    def _fdm(self, fallback_docs_max: int | None) -> int:
        return self._e.fallback_docs_max if fallback_docs_max is None else fallback_docs_max

    def _until_indexed(self, run: Callable[[], Any]) -> Any:
        """`run()` (plan and execute, or explain) after `_access`. While an index it needs is
        being built and no scan within fallback_docs_max can answer, wait for the driver to
        finish it (up to `index_wait_ms`) and run again; without a driver, or nested in a
        callback, IndexBuildingError at once. A warm or cold collection woken by this access
        rebuilds its indexes the same way, so its answer is the hot one."""
        e = self._e
        deadline = None
        while True:
            self._access()
            try:
                return run()
            except IndexBuildingError as exc:
                if e.driven and e.depth() == 1:
                    if deadline is None:
                        deadline = time.monotonic() + e.index_wait_ms / 1000
                    if e.wait_changed(deadline):
                        continue
                remaining = max(0, self._src.count_all() - exc.progress)
                exc.eta_ms = e.indexing.eta_ms(self.name, remaining)
                raise

    def _execute(self, filter: Any, order: Any, limit: Any, offset: Any, after: Any,
                 fallback_docs_max: int | None) -> QueryResult:
        """Plan and run a query (see `_until_indexed`)."""
        def run() -> QueryResult:
            src = self._src if needs_heads(filter, order) else self._ksrc
            return plan_execute(src, self._ci, filter, order, limit=limit,
                                offset=0 if offset is None else offset, after=after,
                                fallback_docs_max=self._fdm(fallback_docs_max))
        result: QueryResult = self._until_indexed(run)
        return result

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
        """Which path `find` would take (ids, index with bounds, id_scan, scan or refused).
        Where `find` would wait for an index being built, so does `explain` (same rule, see
        `find`), so it describes the path `find` takes; `"path": "refused"` with
        `waiting_for_index` only where `find` would raise IndexBuildingError."""
        last: list[dict] = []

        def run() -> dict:
            out = plan_explain(self._ksrc, self._ci, filter, order, limit=limit,
                               offset=0 if offset is None else offset,
                               fallback_docs_max=self._fdm(fallback_docs_max))
            last[:] = [out]
            if "waiting_for_index" in out:
                raise IndexBuildingError(out["reason"], index=out["waiting_for_index"],
                                         progress=self._e.indexing.progress(self.name))
            return out
        try:
            out = self._until_indexed(run)
        except IndexBuildingError as exc:
            out = {**last[0], "eta_ms": exc.eta_ms}
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
            self._access()
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
        Like every read, it wakes a warm or cold collection first, so the entry counts are
        those of a hot one (never the zeros of freed index data): when that wake started a
        throttled rebuild, it waits for it with a driver (up to `index_wait_ms`). Otherwise
        (no driver, after that wait, or a hot collection building a new index) a building
        index is listed as "building" with the entries it has so far: a progress display
        polls this and must not block."""
        woken = self._entry.meta.state != HOT
        self._access()
        e = self._e
        if woken and e.driven and e.depth() == 1:
            deadline = time.monotonic() + e.index_wait_ms / 1000
            while any(i.state != READY for i in self._ci) and e.wait_changed(deadline):
                self._access()
        return self._ci.list_indexes()

    @locked
    def rebuild_indexes(self) -> None:
        """Rebuild every index from the documents (reason "manual")."""
        self._e.indexing.rebuild(self._entry, "manual", self._e.now)

    @locked
    def unique_violations(self) -> list[dict]:
        """Documents sharing a key of a unique index. Local writes cannot cause these
        (ConflictError); concurrent remote writes can, since a CRDT cannot refuse them. They
        stay listed until one side changes or deletes its document. Wakes a warm or cold
        collection first (its unique maps were freed) and finishes any unique index still
        being rebuilt at once (`Indexing.ready_unique`): the answer is the hot one."""
        self._access()
        self._e.indexing.ready_unique(self._entry)
        out = []
        for v in self._ci.violations():
            idx = self._ci.get(v.index)
            out.append({"index": v.index, "fields": list(idx.definition.fields),
                        "values": list(v.values), "ids": list(v.doc_ids)})
        return out

    @locked
    def schema_violations(self) -> list[dict]:
        """Live documents that break the current schema: `[{"id", "field", "error"}]` by id.

        Local writes are validated, so these come from merges: a replica that wrote under
        an older or newer schema version, or none. The documents stay readable and
        editable (a patch or update that makes them valid clears the entry); the change
        event of the merge that caused one lists it in `event.violations`."""
        self._access()
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

    @locked
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
            # Answer as a hot collection would: a warm or cold one is woken (its unique maps
            # were freed), and a unique index part-way through a rebuild is finished first.
            e = self._e
            if self._entry.meta.state != HOT:
                e.indexing.wake(self._entry, e.now)
            e.indexing.ready_unique(self._entry)
            d = self._views.view(state, False)
            try:
                self._ci.check_unique(d, state.doc_id)
            except ConflictError as exc:
                out.append({"rule": "unique", "field": None, "error": str(exc)})
        return tuple(out)

    # ------------------------------------------------------------ schema

    @property
    @locked
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
        self._access()
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
        self._access()
        state = self._state(doc_id)
        if state is None or state.deleted:
            raise NotFoundError(f"{self.name}/{doc_id} does not exist")
        r = self._replica
        # Many fields share a commit: decode each block once, not once per field.
        stamps = state.blame()
        metas: dict[bytes, dict | None] = {}
        for _hlc, _actor, cid in stamps.values():
            if cid not in metas:
                metas[cid] = commit_meta(r, cid)
        return {f: {"cid": cidlib.format_cid(s[2]), "actor": s[1].hex(), "hlc": s[0],
                    "time": hlc.wall_ms(s[0]), "meta": metas[s[2]]}
                for f, s in stamps.items()}

    # ------------------------------------------------------------ collaborative text

    @locked
    def text(self, doc_id: str, field: str) -> TextHandle:
        """An editing handle on a text field (db/text.py): insert, delete, splice, str,
        cursors, blame. A field holding a plain str (or nothing) becomes a text holding that
        str at the first edit. Raises NotFoundError if the document does not exist."""
        check_doc_id(doc_id)
        check_write_field(field)
        self._access()
        self._live(doc_id)
        return TextHandle(self._e, self._e.texts, self.name, doc_id, field)

