"""Database and Collection: the public face. Drives the pure core with a storage adapter,
a crypto backend, an identity and a wall clock (all injectable; defaults read here, never
in the core).

Writes are memory first: a write validates, builds a block, applies it and returns. The
write sink persists in batches: after `sink_batch_ops` writes, when `sink_interval_ms` has
passed (checked on each write and by `tick()`; there are no threads), or on `flush()`. At a
flush the new local blocks are sealed (one signature per batch), appended to storage with
every received block applied since the last flush, and storage is made durable. `flush()`
returns only when that is done; a failed automatic flush is reported by the next `flush()`.
Only sealed (flushed) blocks are ever offered to other replicas.

The query layer (docs/QUERIES.md) is wired here: every visible change, local or remote,
goes through `_publish`, which feeds the change feed and (only for collections that have
indexes) the index catalog; queries run through the planner over the collection's live
documents; index rebuilds and idle demotion (hot/warm/cold) are stepped by `tick()`;
schemas (SDL, versions, lenses) validate writes and translate reads; `graphql()` serves the
generated GraphQL API. Index definitions, tiers and schema versions are kept in storage meta
(durable at the next flush); index entries are not persisted: they are rebuilt on first use
after an open.
"""

from __future__ import annotations

import bisect
import hashlib
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import msgpack

from .core import cid as cidlib
from .core import clock as hlc
from .core import snapshot
from .core.block import (OP_DELETE, OP_INCR, OP_SET, OP_UNSET, KIND_BLOCK, check_collection,
                         check_doc_id, check_field, decode_change, decode_seal, envelope)
from .core.clock import COUNTER_BITS as _COUNTER_BITS
from .core.encoding import canonical
from .core.errors import (ClosedError, ConflictError, CorruptBlockError, CorruptSnapshotError,
                          HistoryPrunedError, NotFoundError, OstraconError, ReadOnlyError,
                          StorageError, ValidationError)
from .core.feed import FEED_RETENTION, SUBSCRIBER_BUFFER, ChangeFeed, ChangeEvent, Subscription
from .core.query.index import DROPPED, READY, CollectionIndexes, IndexCatalog
from .core.query.planner import FALLBACK_DOCS_MAX, QueryResult
from .core.query.planner import execute as plan_execute
from .core.query.planner import explain as plan_explain
from .core.query.filters import (IndexBuildingError, QueryCursorError, QueryTooExpensiveError,
                         compile_filter)
from .core.query.rebuild import (BATCH_SIZE, COLD, COLD_AFTER_MS, HOT, MAX_CONCURRENT, RATE_DOCS_PER_S,
                           WARM, WARM_AFTER_MS, ColdCollectionError, RebuildEvent,
                           RebuildScheduler, TieringPolicy)
from .core.replica import MAX_PENDING_BLOCKS, ApplyResult, Replica
from .core.query.schema import (LensNotFoundError, Schema, SchemaRegistry, SchemaValidationError,
                          parse_sdl, schema_from_canonical)
from .core.state import DocState
from .storage.base import OpenReport, Storage

# Query-layer errors, importable from here (they live in the pure core).
__all__ = ["Database", "Collection", "open_database", "QueryTooExpensiveError",
           "IndexBuildingError", "QueryCursorError", "ColdCollectionError",
           "SchemaValidationError", "LensNotFoundError"]

#: Size trigger of the write sink (DESIGN.md §4): one signature and one storage
#: transaction per 100 writes keeps both costs well under the cost of the writes.
SINK_BATCH_OPS = 100
#: Time trigger: at most this long between a write and its persistence when writes trickle.
SINK_INTERVAL_MS = 5000
#: Default page size of `scan`: large enough for UIs, small enough to bound one call.
SCAN_LIMIT = 500
#: Subscriber callback exceptions kept for inspection (the newest ones).
CALLBACK_ERRORS_KEPT = 20
#: Collections with at most this many documents (tombstones included) get their indexes
#: built synchronously (at create_index, or when a warm collection is used again): ~10-25 ms
#: of CPU, less than the second the rebuild throttle (5,000 docs/s) would make queries wait.
#: Larger collections are rebuilt by throttled jobs stepped from `tick()`.
INDEX_SYNC_BUILD_DOCS = 5_000
#: Head CID -> (hlc, schema id) entries cached to find which schema version a document was
#: written under without decoding its head block on every read; cleared when it grows past.
SCHEMA_CACHE_MAX = 100_000
#: Binary CID -> text cache for `_heads` of views (base32 formatting is ~10 µs per CID in
#: CPython 3.11, more than the rest of a view): ~140 bytes per entry, cleared when full.
CID_TEXT_CACHE_MAX = 65_536
#: Rebuild events kept for inspection (`db.rebuild_status()`).
REBUILD_EVENTS_KEPT = 100
#: Storage meta keys (small msgpack values, durable at the next flush).
META_COLLECTIONS = "ostracon/collections"
META_SCHEMAS = "ostracon/schemas"

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _copy(value: Any) -> Any:
    """Deep copy of a stored value, so callers cannot mutate the replica's state."""
    t = type(value)
    if t is dict:
        return {k: _copy(v) for k, v in value.items()}
    if t is list:
        return [_copy(v) for v in value]
    return value


def _own(doc: dict) -> dict:
    """Make a freshly built view safe to hand out: its top-level dict is new already, so
    only nested containers (shared with the replica's state) are copied."""
    for k, v in doc.items():
        t = type(v)
        if t is dict or t is list:
            doc[k] = _copy(v)
    return doc


def _needs_heads(*parts: Any) -> bool:
    """Whether a filter/order mentions `_heads` (then internal views must carry it; else the
    costly CID formatting is done only for the returned page). False positives are harmless."""
    return any(p is not None and "_heads" in repr(p) for p in parts)


def _parse_actor(a: Any) -> bytes:
    if type(a) is bytes and len(a) == 32:
        return a
    if type(a) is str and len(a) == 64:
        try:
            return bytes.fromhex(a)
        except ValueError:
            pass
    raise ValidationError(f"actor must be 32 bytes or 64 hex chars: {a!r:.80}")


def _commit_info(replica: Replica, cid: bytes, verified_upto: dict) -> dict:
    ch = replica.change(cid)
    sealed = ch.seq <= verified_upto.get(ch.actor, 0)
    if sealed:
        status = "verified"
    elif ch.actor == replica.actor:
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
    }


_EMPTY: dict = {}


class _Source:
    """The planner's DocSource over one collection's live documents (views, never copies:
    the Collection copies the page it returns)."""

    __slots__ = ("col", "heads")

    def __init__(self, col: "Collection", heads: bool = True) -> None:
        self.col = col
        self.heads = heads  # build `_heads` (formatting CIDs is the costly part of a view)

    def _docs(self) -> dict:
        return self.col.db._replica.collections.get(self.col.name, _EMPTY)

    def get(self, doc_id: str) -> dict | None:
        s = self._docs().get(doc_id)
        if s is None or s.deleted:
            return None
        return self.col._view(s, self.heads)

    def iter_docs(self) -> list[dict]:
        view, heads = self.col._view, self.heads
        return [view(s, heads) for s in self._docs().values() if not s.deleted]

    def count_all(self) -> int:
        """Documents including tombstones: what a scan has to step over."""
        return len(self._docs())

    def iter_by_id(self, after_id: str | None = None) -> Iterator[dict]:
        ids = self.col._sorted_ids()
        docs = self._docs()
        view, heads = self.col._view, self.heads
        i = 0 if after_id is None else bisect.bisect_right(ids, after_id)
        n = len(ids)
        while i < n:
            s = docs.get(ids[i])
            i += 1
            if s is not None and not s.deleted:
                yield view(s, heads)


class Collection:
    """Documents of one collection. Get it with `db.collection(name)`.

    Queries (see docs/QUERIES.md): `find`, `find_page`, `explain`; secondary indexes:
    `create_index`, `drop_index`, `indexes`, `unique_violations`; tiers: `tier`,
    `set_tier`, `restore`; schema: `schema`, `set_schema`.
    """

    def __init__(self, db: "Database", name: str) -> None:
        self.db = db
        self.name = name
        self._ids: list[str] | None = None  # sorted ids; kept up to date once built
        self._src = _Source(self)
        self._ksrc = _Source(self, heads=False)  # for index builds and key-only work
        self._ci: CollectionIndexes = db._catalog.collection(name)
        self._meta = db._tiering.meta(name, db._now)
        self._schema: Schema | None = None
        self._schema_raw: bytes | None = None
        self._lens = False  # the schema has several versions: reads may need a lens
        self._refresh_schema()

    # ------------------------------------------------------------ views, access, tiers

    def _refresh_schema(self) -> None:
        reg = self.db.schemas
        if self.name in reg.names():
            s = reg.get(self.name)
            self._schema = s
            self._schema_raw = cidlib.parse_cid(s.version_id)
            self._lens = len(reg.history(self.name)) > 1
        else:
            self._schema = self._schema_raw = None
            self._lens = False

    def _view(self, state: DocState, heads: bool = True) -> dict:
        """The document as reads, queries and indexes see it: `DocState.to_doc()` (same keys,
        same order; a test pins that), brought to the current schema version through the
        registered lenses when it was written under an older one. A fresh top-level dict;
        nested values are shared with the state. heads=False leaves out `_heads` (indexes
        cannot hold it; formatting CIDs costs more than the rest of the view), and head
        texts come from a cache."""
        d = dict(state.user_fields())
        d["_id"] = state.doc_id
        d["_version"] = state.version
        d["_created"] = state.min_t >> _COUNTER_BITS
        d["_updated"] = state.max_t >> _COUNTER_BITS
        d["_deleted"] = state.deleted
        if heads:
            d["_heads"] = self.db._heads_text(state.heads)
        if self._lens:
            d = self.db._migrated(self, state, d)
        return d

    def _finish(self, docs: list[dict]) -> list[dict]:
        """Own copies of a result page, with `_heads` added where the query left it out."""
        states = None
        for d in docs:
            _own(d)
            if "_heads" not in d:
                if states is None:
                    states = self.db._replica.collections.get(self.name, _EMPTY)
                d["_heads"] = self.db._heads_text(states[d["_id"]].heads)
        return docs

    def _access(self, kind: str) -> None:
        """Every read and write passes here: closed check, tier check (cold → refused, warm →
        indexes come back), last-access bookkeeping (with the last clock reading the
        database made: reads never call the clock, so scripted clocks stay deterministic)."""
        db = self.db
        if db._closed:
            raise ClosedError("the database is closed")
        m = self._meta
        if m.state != HOT:
            db._wake(self, kind)
        if db._now > m.last_access_ms:
            m.last_access_ms = db._now

    @property
    def tier(self) -> str:
        """"hot", "warm" or "cold" (see docs/QUERIES.md, Tiers)."""
        return self._meta.state

    def metadata(self) -> dict:
        """What the database records about this collection: tier, last access, index states."""
        self.db._tiering.sync_indexes(self.name, self._ci)
        return self._meta.to_record()

    def set_tier(self, tier: str) -> str:
        """Move the collection to `tier`. hot: indexes in memory; warm: index entries freed,
        rebuilt (under the throttle) on the next access; cold: reads, queries and local
        writes refused with ColdCollectionError until `restore()` (remote changes still merge)."""
        return self.db._set_tier(self, tier)

    def restore(self) -> str:
        """Cold → warm: usable again; indexes come back on the next access."""
        return self.db._set_tier(self, WARM if self._meta.state == COLD else self._meta.state)

    # ------------------------------------------------------------ reads

    def _state(self, doc_id: str) -> DocState | None:
        self.db._check_open()
        return self.db._replica.doc(self.name, doc_id)

    def get(self, doc_id: str, at: str | list[str] | None = None, *,
            include_deleted: bool = False) -> dict | None:
        """The document, or None if it does not exist (or is deleted).

        `at`: a commit CID or a list of head CIDs: the document as it was then.
        """
        check_doc_id(doc_id)
        self._access("get")
        state = self.db._replica.doc(self.name, doc_id)
        if state is None:
            return None
        if at is not None:
            state = self.db._state_at(state, at)
        if state.deleted and not include_deleted:
            return None
        return _own(self._view(state))

    def get_many(self, ids: Iterable[str], *, include_deleted: bool = False) -> list[dict | None]:
        return [self.get(i, include_deleted=include_deleted) for i in ids]

    def _sorted_ids(self) -> list[str]:
        if self._ids is None:
            docs = self.db._replica.collections.get(self.name, _EMPTY)
            self._ids = sorted(docs)
        return self._ids

    def _note_id(self, doc_id: str) -> None:
        """A document id may be new: keep the sorted id list current (O(log n) + memmove)
        instead of re-sorting every id on the next scan."""
        ids = self._ids
        if ids is not None:
            i = bisect.bisect_left(ids, doc_id)
            if i == len(ids) or ids[i] != doc_id:
                ids.insert(i, doc_id)

    def _scan_views(self, prefix: str, after: str | None, limit: int,
                    include_deleted: bool, heads: bool = True) -> tuple[list[dict], str | None]:
        ids = self._sorted_ids()
        start = prefix if after is None or after < prefix else after
        i = bisect.bisect_right(ids, start) if after is not None and after >= prefix else bisect.bisect_left(ids, start)
        docs = self.db._replica.collections.get(self.name, _EMPTY)
        out: list[dict] = []
        view = self._view
        while i < len(ids):
            doc_id = ids[i]
            if not doc_id.startswith(prefix):
                return out, None
            state = docs[doc_id]
            i += 1
            if state.deleted and not include_deleted:
                continue
            out.append(view(state, heads))
            if len(out) >= limit:
                more = i < len(ids) and ids[i].startswith(prefix)
                return out, (doc_id if more else None)
        return out, None

    def _fetch(self, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
        """Rebuild jobs read live documents in id order through this (no copies)."""
        if self._meta.state == COLD:
            raise ColdCollectionError(f"collection {self.name!r} is cold")
        return self._scan_views("", cursor, limit, False, heads=False)

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
        docs, nxt = self._scan_views(prefix, after, limit, include_deleted)
        return [_own(d) for d in docs], nxt

    def count(self, *, include_deleted: bool = False) -> int:
        self._access("count")
        docs = self.db._replica.collections.get(self.name, _EMPTY)
        if include_deleted:
            return len(docs)
        return sum(1 for d in docs.values() if not d.deleted)

    # The planner's DocSource contract, public (copies; the engine itself uses `_src`).
    def iter_docs(self) -> Iterator[dict]:
        """Every visible document (any order), as copies."""
        self._access("scan")
        return (_own(d) for d in self._src.iter_docs())

    def count_all(self) -> int:
        """Number of documents including tombstones (what a full scan steps over)."""
        self._access("count")
        return self._src.count_all()

    def iter_by_id(self, after_id: str | None = None) -> Iterator[dict]:
        """Visible documents with `_id > after_id`, in id order, as copies."""
        self._access("scan")
        return (_own(d) for d in self._src.iter_by_id(after_id))

    # ------------------------------------------------------------ queries

    def _execute(self, filter: Any, order: Any, limit: Any, offset: Any, after: Any,
                 fallback_docs_max: int | None) -> QueryResult:
        self._access("query")
        fdm = self.db.fallback_docs_max if fallback_docs_max is None else fallback_docs_max
        src = self._src if _needs_heads(filter, order) else self._ksrc
        try:
            return plan_execute(src, self._ci, filter, order, limit=limit,
                                offset=0 if offset is None else offset, after=after,
                                fallback_docs_max=fdm)
        except IndexBuildingError as e:
            remaining = max(0, self._src.count_all() - e.progress)
            e.eta_ms = self.db._scheduler.eta_ms(self.name, remaining)
            raise

    def find(self, filter: dict | None = None, order: Any = None, limit: int | None = None,
             offset: int | None = None, after: str | None = None, *,
             fallback_docs_max: int | None = None) -> list[dict]:
        """Documents matching a DefraDB-style filter, ordered, paged (see docs/QUERIES.md).

        `after` is a cursor from `find_page`; the planner uses an index when one serves the
        filter or order, else scans (refused beyond `fallback_docs_max` documents,
        tombstones included, with QueryTooExpensiveError)."""
        return self._finish(self._execute(filter, order, limit, offset, after,
                                          fallback_docs_max).docs)

    def find_page(self, filter: dict | None = None, order: Any = None, limit: int | None = None,
                  offset: int | None = None, after: str | None = None, *,
                  fallback_docs_max: int | None = None) -> tuple[list[dict], str | None]:
        """Like `find`, and the cursor of the next page (None on the last page). Pass it as
        `after=` with the same filter and order: keyset pagination, stable under writes."""
        r = self._execute(filter, order, limit, offset, after, fallback_docs_max)
        return self._finish(r.docs), r.next_cursor

    def explain(self, filter: dict | None = None, order: Any = None, limit: int | None = None,
                offset: int | None = None, *, fallback_docs_max: int | None = None) -> dict:
        """Which path `find` would take (ids, index with bounds, id_scan, scan or refused)."""
        self._access("query")
        fdm = self.db.fallback_docs_max if fallback_docs_max is None else fallback_docs_max
        out = plan_explain(self._ksrc, self._ci, filter, order, limit=limit,
                           offset=0 if offset is None else offset, fallback_docs_max=fdm)
        return {"collection": self.name, "tier": self._meta.state, **out}

    # ------------------------------------------------------------ indexes

    def create_index(self, fields: str | list[str] | tuple[str, ...], unique: bool = False,
                     name: str | None = None) -> str:
        """Define a secondary index (dotted paths for nested fields); returns its name.

        Small collections (<= index_sync_build_docs documents) get it at once; larger ones
        get a rebuild job stepped by `db.tick()` under the throttle (state "building" until
        done; queries meanwhile use a scan within fallback_docs_max, else IndexBuildingError).
        A unique index over data that already holds a duplicate → ConflictError (checked at
        once for small collections; for large ones duplicates appear in unique_violations()).
        Idempotent for an identical definition."""
        return self.db._create_index(self, fields, unique, name)

    def drop_index(self, name: str) -> None:
        self.db._drop_index(self, name)

    def indexes(self) -> list[dict]:
        """name, fields, unique, state (ready | building | dropped) and entries of each index."""
        self.db._check_open()
        return self._ci.list_indexes()

    def rebuild_indexes(self) -> None:
        """Rebuild every index from the documents (reason "manual")."""
        self.db._rebuild(self, "manual")

    def unique_violations(self) -> list[dict]:
        """Documents sharing a key of a unique index. Local writes cannot cause these
        (ConflictError); concurrent remote writes can, since a CRDT cannot refuse them. They
        stay listed until one side changes or deletes its document."""
        self.db._check_open()
        out = []
        for v in self._ci.violations():
            idx = self._ci.get(v.index)
            out.append({"index": v.index, "fields": list(idx.definition.fields),
                        "values": list(v.values), "ids": list(v.doc_ids)})
        return out

    # ------------------------------------------------------------ schema

    @property
    def schema(self) -> Schema | None:
        """The current schema version of this collection (None: schemaless)."""
        return self._schema

    def set_schema(self, sdl: str) -> str:
        """Register `sdl` (which must define `type <collection name>`); returns the version id."""
        defs = parse_sdl(sdl)
        if self.name not in defs:
            raise ValidationError(f"the SDL does not define type {self.name} "
                                  f"(it defines {', '.join(sorted(defs))})")
        return self.db.define_schema(sdl)[self.name]

    # ------------------------------------------------------------ history

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
        r = self.db._replica
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
        infos = [_commit_info(r, c, r.sealed_upto) for c in cids]
        infos.sort(key=lambda i: (i["height"], i["hlc"], i["cid"]))
        return marker + infos

    def blame(self, doc_id: str) -> dict[str, dict]:
        """field -> the commit that wrote its current value."""
        check_doc_id(doc_id)
        self._access("history")
        state = self._state(doc_id)
        if state is None or state.deleted:
            raise NotFoundError(f"{self.name}/{doc_id} does not exist")
        return {f: {"cid": cidlib.format_cid(s[2]), "actor": s[1].hex(), "hlc": s[0],
                    "time": hlc.wall_ms(s[0])} for f, s in state.blame().items()}

    # ------------------------------------------------------------ writes

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
            if not compile_filter(where).match(self._view(state)):
                raise ConflictError(f"{self.name}/{state.doc_id} does not match the `where` condition")

    def _has_unique(self) -> bool:
        ci = self._ci
        return bool(len(ci)) and any(i.unique for i in ci)

    def _check_unique(self, fields: dict, doc_id: str) -> None:
        """The full resulting document against every unique index, before anything is
        written: a duplicate → ConflictError and nothing changes."""
        d = dict(fields)
        d["_id"] = doc_id
        self._ci.check_unique(d, doc_id)

    def _user_view(self, state: DocState) -> dict:
        return {k: v for k, v in self._view(state, False).items() if k[0] != "_"}

    def _migration_ops(self, state: DocState) -> list | None:
        """Ops that rewrite a document written under an older schema version into the current
        one (the lens result), so a partial write never mixes old and new field shapes.
        None when the document is current (or there is no schema history)."""
        if not self._lens:
            return None
        db = self.db
        sid = db._doc_schema_id(state)
        if sid is None or sid == self._schema.version_id:  # type: ignore[union-attr]
            return None
        user = self._user_view(state)
        raw = state.user_fields()
        changed = {k: v for k, v in user.items()
                   if k not in raw or type(raw[k]) is not type(v) or raw[k] != v}
        ops = _set_ops(changed)
        ops.extend((OP_UNSET, k) for k in raw if k not in user)
        return ops

    def create(self, doc: dict, id: str | None = None) -> str:
        """Create a document; returns its id. An id of a live document → ConflictError."""
        ops = _set_ops(doc)
        db = self.db
        db._check_writable()
        check_collection(self.name)
        self._access("write")
        if self._schema is not None:
            self._schema.validate(doc)
        if id is None:
            id = db._new_id()
        else:
            check_doc_id(id)
            state = db._replica.doc(self.name, id)
            if state is not None and not state.deleted:
                raise ConflictError(f"{self.name}/{id} already exists")
        if len(self._ci) and self._has_unique():
            self._check_unique(doc, id)
        is_new = db._replica.doc(self.name, id) is None
        db._write_raw(self, id, ops, self._schema_raw)
        if is_new:
            self._note_id(id)
        return id

    def update(self, doc_id: str, doc: dict, *, if_version: int | None = None,
               if_heads: Any = None, where: Any = None) -> str:
        """Replace the user fields (fields not given are removed). Returns the commit CID."""
        ops = _set_ops(doc)
        self.db._check_writable()
        self._access("write")
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        if self._schema is not None:
            self._schema.validate(doc)
        if len(self._ci) and self._has_unique():
            self._check_unique(doc, doc_id)
        given = {op[1] for op in ops}
        ops.extend((OP_UNSET, f) for f in state.user_fields() if f not in given)
        return self.db._write(self, doc_id, ops, self._schema_raw)

    def patch(self, doc_id: str, fields: dict, *, unset: Iterable[str] = (),
              if_version: int | None = None, if_heads: Any = None, where: Any = None) -> str:
        """Set the given fields (and remove those in `unset`). Returns the commit CID."""
        ops = _set_ops(fields)
        unset = [check_field(f) for f in unset]
        if {op[1] for op in ops} & set(unset):
            raise ValidationError("a field cannot be both set and unset")
        self.db._check_writable()
        self._access("write")
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        sch = self._schema
        if sch is not None:
            sch.validate(fields, partial=True)
            for f in unset:
                fd = sch.get_field(f)
                if fd is not None and fd.type.required:
                    where_ = f"{sch.name}.{f}"
                    raise SchemaValidationError(f"{where_}: required ({fd.type}); it cannot be "
                                                f"removed", field=where_)
        if len(self._ci) and self._has_unique():
            result = self._user_view(state)
            result.update(fields)
            for f in unset:
                result.pop(f, None)
            self._check_unique(result, doc_id)
        unset_ops = [(OP_UNSET, f) for f in sorted(set(unset))]
        mig = self._migration_ops(state)
        if mig:
            merged = {op[1]: op for op in mig}
            merged.update((op[1], op) for op in ops)
            merged.update((op[1], op) for op in unset_ops)
            ops = [merged[k] for k in sorted(merged)]
        else:
            ops.extend(unset_ops)
        return self.db._write(self, doc_id, ops, self._schema_raw)

    def delete(self, doc_id: str, *, if_version: int | None = None, if_heads: Any = None,
               where: Any = None) -> str:
        """Tombstone the document (history is kept). Returns the commit CID."""
        self.db._check_writable()
        self._access("write")
        state = self._live(doc_id)
        self._check_cas(state, if_version, if_heads, where)
        return self.db._write(self, doc_id, [(OP_DELETE,)], self._schema_raw)

    def increment(self, doc_id: str, field: str, by: int | float = 1) -> str:
        """Add `by` to a counter field (concurrent increments all count)."""
        check_field(field)
        if type(by) not in (int, float) or by != by or by in (float("inf"), float("-inf")):
            raise ValidationError("increment must be a finite int or float")
        if type(by) is int and not -(2**63) <= by < 2**63:
            raise ValidationError("increment must fit in 64 bits")
        self.db._check_writable()
        self._access("write")
        state = self._live(doc_id)
        if self._schema is not None:
            self._schema.validate_increment(field, by)
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
            result = self._user_view(state)
            cur = result.get(field)
            result[field] = (cur if type(cur) in (int, float) else 0) + by
            self._check_unique(result, doc_id)
        return self.db._write(self, doc_id, ops, self._schema_raw)


_SCALARS = (str, int, float, bool, type(None), bytes)


def _set_ops(doc: Any) -> list:
    if type(doc) is not dict:
        raise ValidationError(f"a document must be a dict, not {type(doc).__name__}")
    try:
        names = sorted(doc)
    except TypeError:
        raise ValidationError("field names must be str") from None
    ops = []
    for name in names:
        if type(name) is not str or not name or name[0] == "_" or len(name) > 256:
            check_field(name)  # raises the precise error
        v = doc[name]
        t = type(v)
        if t is float or t not in _SCALARS:  # floats: NaN/Inf check; containers: full walk
            v = canonical(v)
        ops.append((OP_SET, name, v))
    return ops


class Database:
    """An open Ostracon database. Use `ostracon.open(...)`."""

    def __init__(self, storage: Storage, *, identity: Any, crypto: Any,
                 clock: Callable[[], int] | None = None, random_bytes: Callable[[int], bytes] | None = None,
                 require_signatures: bool = True, sink_batch_ops: int = SINK_BATCH_OPS,
                 sink_interval_ms: int = SINK_INTERVAL_MS, feed_retention: int = FEED_RETENTION,
                 max_pending_blocks: int = MAX_PENDING_BLOCKS,
                 fallback_docs_max: int = FALLBACK_DOCS_MAX,
                 index_sync_build_docs: int = INDEX_SYNC_BUILD_DOCS,
                 rebuild_batch_size: int = BATCH_SIZE, rebuild_rate_docs_per_s: int = RATE_DOCS_PER_S,
                 rebuild_max_concurrent: int = MAX_CONCURRENT, auto_tier: bool = False,
                 warm_after_ms: int = WARM_AFTER_MS, cold_after_ms: int = COLD_AFTER_MS) -> None:
        if sink_batch_ops < 1 or sink_interval_ms < 0:
            raise ValidationError("sink_batch_ops must be >= 1 and sink_interval_ms >= 0")
        for pname, v in (("fallback_docs_max", fallback_docs_max),
                         ("index_sync_build_docs", index_sync_build_docs)):
            if type(v) is not int or v < 0:
                raise ValidationError(f"{pname} must be an int >= 0")
        self.storage = storage
        self.identity = identity
        self.crypto = crypto
        self.clock = clock or _wall_ms
        self._random = random_bytes or crypto.random_bytes
        self.sink_batch_ops = sink_batch_ops
        self.sink_interval_ms = sink_interval_ms
        self._replica = Replica(identity.actor, require_signatures=require_signatures,
                                verify=crypto.ed25519_verify, max_pending_blocks=max_pending_blocks)
        self._collections: dict[str, Collection] = {}
        self._unpersisted: list[bytes] = []
        self._writes_since_flush = 0
        self._last_flush_ms: int | None = None
        self._sink_error: StorageError | None = None
        self._closed = False
        self._listeners: list[Callable[[str, str, DocState], None]] = []
        self.callback_errors: list[Exception] = []
        # Query layer. `_now` is the last wall-clock reading the database made (writes and
        # tick() read the clock); access times use it so reads never call the clock.
        self._now = 0
        self.fallback_docs_max = fallback_docs_max
        self.index_sync_build_docs = index_sync_build_docs
        self.auto_tier = bool(auto_tier)
        self._catalog = IndexCatalog()
        self._indexed: dict[str, Collection] = {}   # only collections with >= 1 index
        self._scheduler = RebuildScheduler(batch_size=rebuild_batch_size,
                                           rate_docs_per_s=rebuild_rate_docs_per_s,
                                           max_concurrent=rebuild_max_concurrent)
        self._tiering = TieringPolicy(warm_after_ms=warm_after_ms, cold_after_ms=cold_after_ms)
        self.rebuild_events: deque[RebuildEvent] = deque(maxlen=REBUILD_EVENTS_KEPT)
        self.schemas = SchemaRegistry()
        self._head_schema: dict[bytes, tuple[int, bytes | None]] = {}
        self._cid_text: dict[bytes, str] = {}
        self._gql: dict[bool, Any] = {}
        self._meta_saved = False
        self._load()
        self._replica.own_durable = self._replica.seq_of(self._replica.actor)  # all from storage
        self.feed = ChangeFeed(self._random(6).hex(), feed_retention)
        self._load_meta()

    # ------------------------------------------------------------ lifecycle

    def _load(self) -> None:
        snap = self.storage.load_snapshot()
        after = 0
        if snap is not None:
            data, after = snap
            snapshot.load(self._replica, data)
        batch: list[bytes] = []
        for _, rec in self.storage.records(after):
            batch.append(rec)
            if len(batch) >= 10_000:
                self._replay(batch, "log")
                batch = []
        if batch:
            self._replay(batch, "log")

    def _replay(self, envelopes: list[bytes], where: str) -> None:
        try:
            self._replica.apply_envelopes(envelopes, trusted=True, strict=True)
        except CorruptBlockError as exc:
            raise StorageError(f"stored {where} holds a malformed block ({exc}); open with "
                               f"repair=True or restore from a replica") from None

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the database is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.storage.read_only:
            raise ReadOnlyError("the database was opened read-only")

    def close(self) -> None:
        if self._closed:
            return
        try:
            if not self.storage.read_only:
                if self._meta_saved:
                    self._save_meta()  # last access times
                self.flush()
        finally:
            self._closed = True
            self.storage.close()

    @property
    def actor(self) -> str:
        return self._replica.actor.hex()

    def open_report(self) -> OpenReport:
        return self.storage.open_report()

    def collection(self, name: str) -> Collection:
        self._check_open()
        col = self._collections.get(name)
        if col is None:
            check_collection(name)
            col = self._collections[name] = Collection(self, name)
        return col

    def collections(self) -> list[str]:
        return sorted(self._replica.collections)

    # ------------------------------------------------------------ write path

    def _new_id(self) -> str:
        """Time-sortable id: the 64-bit clock stamp then 64 random bits, base32 (26 chars)."""
        stamp = self._replica.clock.now(self.clock())
        n = (stamp << 64) | int.from_bytes(self._random(8), "big")
        return "".join(_CROCKFORD[(n >> s) & 31] for s in range(125, -1, -5))

    def _write(self, col: Collection, doc_id: str, ops: list, schema: bytes | None = None) -> str:
        return cidlib.format_cid(self._write_raw(col, doc_id, ops, schema))

    def _write_raw(self, col: Collection, doc_id: str, ops: list,
                   schema: bytes | None = None) -> bytes:
        now = self.clock()
        self._now = now
        cid, data, state = self._replica.commit(col.name, doc_id, ops, now, schema)
        self._unpersisted.append(envelope(KIND_BLOCK, data))
        self._writes_since_flush += 1
        self._publish(col.name, doc_id, state)
        if self._last_flush_ms is None:
            self._last_flush_ms = now
        if (self._writes_since_flush >= self.sink_batch_ops
                or now - self._last_flush_ms >= self.sink_interval_ms):
            self._auto_flush(now)
        return cid

    def _publish(self, collection: str, doc_id: str, state: DocState) -> None:
        # The change is applied already: a failing subscriber callback must not make the
        # write look failed. Errors are kept (bounded) in `callback_errors` for the app.
        try:
            self.feed.publish(collection, doc_id, state.version, state.deleted,
                              state.min_t >> 16, state.max_t >> 16, state.user_fields())
        except Exception as exc:  # noqa: BLE001 - user code
            self._callback_error(exc)
        # Indexes: one dict lookup when the collection has none (the write path stays as
        # fast as without a query layer).
        col = self._indexed.get(collection)
        if col is not None:
            self._maintain(col, doc_id, state)
        for fn in self._listeners:
            fn(collection, doc_id, state)

    def _maintain(self, col: Collection, doc_id: str, state: DocState) -> None:
        """Feed one visible change to the collection's indexes. The index remembers the key
        it last stored per document, so the old document is never needed (old=None)."""
        if col._meta.state != HOT:
            return  # warm/cold: every index is dropped and rebuilt on the next access
        new = None
        if not state.deleted:
            try:
                new = col._view(state, False)
            except OstraconError:  # a failing lens: index the stored fields rather than nothing
                new = state.to_doc()
        try:
            self._catalog.on_change(col.name, doc_id, None, new)
        except Exception as exc:  # noqa: BLE001 - an index missed this change: a gap
            self._callback_error(exc)
            self._rebuild(col, "gap")

    def _callback_error(self, exc: Exception) -> None:
        self.callback_errors.append(exc)
        del self.callback_errors[:-CALLBACK_ERRORS_KEPT]

    def _auto_flush(self, now: int) -> None:
        try:
            self._flush(now)
        except StorageError as exc:
            self._sink_error = exc  # reported by the next explicit flush()

    def tick(self) -> list[RebuildEvent]:
        """Drivers call this periodically (no threads): fires the sink's time trigger, steps
        index rebuilds under their throttle, and (with auto_tier) demotes idle collections.
        Returns the rebuild events of this step."""
        self._check_open()
        now = self.clock()
        self._now = now
        if (self._unpersisted or self._replica.unsealed_count()) and self._last_flush_ms is not None \
                and now - self._last_flush_ms >= self.sink_interval_ms:
            self._auto_flush(now)
        events: list[RebuildEvent] = []
        if not self._scheduler.idle():
            events = self._step_rebuilds(now)
        if self.auto_tier:
            self._sweep(now)
        return events

    def _flush(self, now: int) -> None:
        r = self._replica
        seals = r.seal_local(self.identity.sign)
        self._unpersisted.extend(envelope(2, s) for s in seals)
        if self._unpersisted:
            batch = self._unpersisted
            self.storage.append(batch)
            self._unpersisted = []
        # Raises on failure; then our new blocks stay unshareable (own_durable unchanged):
        # only blocks that survived a flush are ever offered to other replicas.
        self.storage.flush()
        r.own_durable = r.seq_of(r.actor)
        self._writes_since_flush = 0
        self._last_flush_ms = now
        self._sink_error = None

    def flush(self) -> None:
        """Return once every earlier write is durable; raise StorageError if it is not.

        A failed automatic flush left its batch queued; this retries it, so an error is
        raised here exactly when something acknowledged-looking is still not durable."""
        self._check_open()
        if self.storage.read_only:
            return
        self._flush(self.clock())

    def compact(self, prune_before: int | None = None) -> int:
        """Flush, write a snapshot of every block and seal, and let storage drop the log it
        covers. Returns the snapshot's record position.

        History stays complete unless `prune_before` (wall ms) is given: then the bodies of
        blocks older than it (except current heads) are dropped, keeping a verifiable
        checkpoint (state hash, frontier CIDs, digest of the pruned CIDs). CIDs, DAG links
        and seals stay; history, time travel and sync that need a dropped body raise
        HistoryPrunedError instead of answering short.
        """
        self._check_writable()
        self.flush()
        if prune_before is not None:
            self._prune(prune_before)
        position = self.storage.last_position()
        self.storage.write_snapshot(snapshot.dump(self._replica), position)
        self.storage.compact(position)
        return position

    def _prune(self, horizon: int) -> None:
        if type(horizon) is not int or horizon < 0:
            raise ValidationError("prune_before must be a wall time in ms (int >= 0)")
        r = self._replica
        heads = set(r.heads())
        drop = [c for c in r.order
                if c in r.blocks and c not in heads and hlc.wall_ms(r.change(c).hlc) < horizon]
        if not drop:
            return
        dropped = set(drop)
        frontier = set()
        for c in r.order:
            if c in r.blocks and c not in dropped:
                frontier.update(p for p in r.change(c).parents if p in dropped or p in r.pruned)
        for c in drop:
            del r.blocks[c]
        r.pruned |= dropped
        prev = r.checkpoint or {}
        r.checkpoint = {
            "horizon": max(horizon, prev.get("horizon", 0)),
            "pruned": len(r.pruned),
            "pruned_digest": hashlib.sha256(b"".join(c for c in r.order if c in r.pruned)).hexdigest(),
            "frontier": sorted(cidlib.format_cid(c) for c in frontier),
            "state_hash": self.state_hash(),
        }

    @property
    def checkpoint(self) -> dict | None:
        """The pruning checkpoint (None if nothing was ever pruned)."""
        return self._replica.checkpoint

    @property
    def pending_writes(self) -> int:
        """Writes not yet acknowledged by storage."""
        return self._writes_since_flush

    # ------------------------------------------------------------ replication

    def heads(self) -> list[str]:
        self._check_open()
        return [cidlib.format_cid(h) for h in self._replica.heads()]

    def version_vector(self) -> dict[str, int]:
        self._check_open()
        return {a.hex(): n for a, n in self._replica.version_vector().items()}

    def state_hash(self) -> str:
        """sha256 over every document's (collection, id, deleted, fields, heads), sorted."""
        self._check_open()
        h = hashlib.sha256()
        cols = self._replica.collections
        for name in sorted(cols):
            docs = cols[name]
            for doc_id in sorted(docs):
                h.update(docs[doc_id].digest())
        return h.hexdigest()

    def blocks_since(self, vector: dict | None = None) -> list[bytes]:
        """Envelopes (blocks and their seals) that a replica with `vector` lacks."""
        self._check_open()
        vec = {}
        for a, n in (vector or {}).items():
            if type(n) is not int or n < 0:
                raise ValidationError("version vector values must be ints >= 0")
            vec[_parse_actor(a)] = n
        return self._replica.envelopes_since(vec)

    def apply_blocks(self, envelopes: Iterable[bytes], *, strict: bool = True) -> int:
        """Verify and merge envelopes from another replica; returns how many blocks were new.

        strict=True: any malformed envelope → CorruptBlockError and nothing of the batch is
        applied. Details of the last call are in `last_apply`.
        """
        self._check_writable()
        envs = list(envelopes)
        before_seals = {a: list(s) for a, s in self._replica.seals.items()}
        result = self._replica.apply_envelopes(envs, strict=strict)
        self.last_apply: ApplyResult = result
        self._persist_applied(result, before_seals)
        seen = set()
        for key in result.changed_docs:
            if key not in seen:
                seen.add(key)
                col = self._collections.get(key[0])
                if col is not None:
                    col._note_id(key[1])
                self._publish(key[0], key[1], self._replica.doc(*key))
        return result.new

    def _persist_applied(self, result: ApplyResult, before_seals: dict) -> None:
        r = self._replica
        if result.new:
            for c in r.order[len(r.order) - result.new:]:
                self._unpersisted.append(envelope(KIND_BLOCK, r.blocks[c]))
        for actor, seals in r.seals.items():
            old = before_seals.get(actor, [])
            if len(seals) != len(old):
                known = set(old)
                for s in seals:
                    if s not in known:
                        self._unpersisted.append(envelope(2, s[2]))
        if result.new or result.seals:
            self._writes_since_flush += result.new
            now = self.clock()
            if self._last_flush_ms is None:
                self._last_flush_ms = now
            if self._writes_since_flush >= self.sink_batch_ops:
                self._auto_flush(now)

    # ------------------------------------------------------------ sync

    async def sync(self, relay_url: str, space: Any, **options: Any) -> Any:
        """Start syncing with `space` through the relay (asyncio). Returns the running client:
        `await h.wait_synced()`, `h.status`, `await h.stop()`. See docs/SYNC.md."""
        self._check_open()
        import sys
        if sys.platform == "emscripten":
            from .runtime.browser.transport import start_sync
        else:
            from .sync.native import start_sync
        return await start_sync(self, relay_url, space, **options)

    def sync_blocking(self, relay_url: str, space: Any, timeout: float = 30.0, **options: Any) -> Any:
        """For scripts: connect, exchange everything, disconnect; returns the final status."""
        self._check_open()
        from .sync.native import sync_once_blocking
        return sync_once_blocking(self, relay_url, space, timeout=timeout, **options)

    # ------------------------------------------------------------ time travel

    def _state_at(self, state: DocState, at: Any) -> DocState:
        heads = [at] if isinstance(at, (str, bytes)) else list(at)
        if not heads:
            raise ValidationError("`at` needs at least one CID")
        r = self._replica
        wanted: set[bytes] = set()
        stack = []
        for h in heads:
            raw = cidlib.parse_cid(h)
            info = r.info.get(raw)
            if info is None or info[0] != state.collection or info[1] != state.doc_id:
                raise NotFoundError(f"{h} is not a commit of {state.collection}/{state.doc_id}")
            stack.append(raw)
        while stack:
            c = stack.pop()
            if c in wanted:
                continue
            wanted.add(c)
            stack.extend(r.change(c).parents)
        past = DocState(state.collection, state.doc_id)
        for c in state.cids:  # apply order is causal, so parents come first
            if c in wanted:
                past.apply(c, r.change(c))
        return past

    # ------------------------------------------------------------ indexes, rebuilds, tiers

    def _small(self, col: Collection) -> bool:
        return col._src.count_all() <= self.index_sync_build_docs

    def _build_now(self, col: Collection) -> None:
        """Build every index of `col` that is not ready, synchronously (small collections)."""
        pending = [i for i in col._ci if i.state != READY]
        if not pending:
            return
        self._scheduler.cancel(col.name)
        views = col._ksrc.iter_docs()
        for idx in pending:
            idx.build(views)
            idx.state = READY
        self._tiering.sync_indexes(col.name, col._ci)

    def _rebuild(self, col: Collection, reason: str) -> None:
        """Empty and refill every index of `col`: at once when small, else a throttled job."""
        if not len(col._ci) or col._meta.state != HOT:
            return  # nothing to do / warm and cold collections rebuild when used again
        if self._small(col):
            col._ci.begin_rebuild()
            self._build_now(col)
        else:
            self._scheduler.schedule(col.name, list(col._ci), col._fetch, reason=reason,
                                     now_ms=self._now)
            self._tiering.sync_indexes(col.name, col._ci)

    def _create_index(self, col: Collection, fields: Any, unique: bool, name: str | None) -> str:
        col._access("index")
        ci = col._ci
        before = {i.name for i in ci}
        if self._small(col):
            idx = ci.create_index(fields, unique, name, docs=col._ksrc.iter_docs())
        else:
            idx = ci.create_index(fields, unique, name)
            if idx.name not in before:
                self._scheduler.schedule(col.name, [idx], col._fetch, reason="new_index",
                                         now_ms=self._now)
        self._indexed[col.name] = col
        self._tiering.sync_indexes(col.name, ci)
        if idx.name not in before:
            self._save_meta()
        return idx.name

    def _drop_index(self, col: Collection, name: str) -> None:
        self._check_open()
        idx = col._ci.get(name)
        col._ci.drop_index(name)
        for job in self._scheduler.running + self._scheduler.pending:
            if idx in job.indexes:
                job.indexes.remove(idx)
        if not len(col._ci):
            self._indexed.pop(col.name, None)
        self._tiering.sync_indexes(col.name, col._ci)
        self._save_meta()

    def _step_rebuilds(self, now: int) -> list[RebuildEvent]:
        events = self._scheduler.step(now)
        for ev in events:
            self.rebuild_events.append(ev)
            if ev.kind in ("done", "failed"):
                col = self._collections.get(ev.collection)
                if col is not None:
                    self._tiering.sync_indexes(col.name, col._ci)
        return events

    def rebuild_status(self, collection: str | None = None) -> list[dict]:
        """Rebuild jobs (running, pending, recently finished) with their progress."""
        self._check_open()
        return self._scheduler.status(collection)

    def _wake(self, col: Collection, kind: str) -> None:
        """An access to a non-hot collection: cold → ColdCollectionError; warm → hot again,
        indexes rebuilt (at once when small, else under the throttle)."""
        m = self._tiering.touch(col.name, self._now, kind=kind)
        if m.state == WARM:
            self._tiering.activate(col.name, col._ci, self._scheduler, col._fetch, self._now)
            if self._small(col):
                self._build_now(col)
            self._save_meta()

    def _set_tier(self, col: Collection, tier: str) -> str:
        self._check_open()
        if tier not in (HOT, WARM, COLD):
            raise ValidationError(f"tier must be one of hot, warm, cold; not {tier!r}")
        now, name, pol = self._now, col.name, self._tiering
        state = col._meta.state
        if tier == COLD:
            pol.make_cold(name, now, self._scheduler)
            col._ci.drop_data()
            pol.sync_indexes(name, col._ci)
            col._ids = None  # what a cold collection can give back without losing data
        elif tier == WARM:
            if state == COLD:
                pol.restore(name, now)
            else:
                pol.make_warm(name, col._ci, now, self._scheduler)
        else:
            if state == COLD:
                pol.restore(name, now)
            if col._meta.state == WARM:
                self._wake(col, "activate")
        self._save_meta()
        return col._meta.state

    def _sweep(self, now: int) -> None:
        for c in self._collections.values():  # first sighting: idle time starts now
            if c._meta.last_access_ms == 0:
                c._meta.last_access_ms = now
        changes = self._tiering.sweep(now)
        for name, _, to in changes:
            col = self._collections.get(name)
            self._scheduler.cancel(name)
            if col is not None:
                col._ci.drop_data()
                self._tiering.sync_indexes(name, col._ci)
                if to == COLD:
                    col._ids = None
        if changes:
            self._save_meta()

    # ------------------------------------------------------------ persisted metadata

    def _save_meta(self) -> None:
        """Index definitions and tier records → storage meta (durable at the next flush)."""
        if self.storage.read_only or self._closed:
            return
        cols = []
        for name in sorted(self._collections):
            col = self._collections[name]
            if not len(col._ci) and col._meta.state == HOT:
                continue
            self._tiering.sync_indexes(name, col._ci)
            cols.append({"name": name, "tier": col._meta.to_record(),
                         "indexes": [{"name": i.name, "fields": list(i.definition.fields),
                                      "unique": i.unique} for i in col._ci]})
        if not cols and not self._meta_saved:
            return
        self.storage.set_meta(META_COLLECTIONS, msgpack.packb({"v": 1, "collections": cols},
                                                              use_bin_type=True))
        self._meta_saved = True

    def _save_schemas(self) -> None:
        if self.storage.read_only:
            return
        reg = self.schemas
        versions = [s.canonical_bytes() for n in reg.names() for s in reg.history(n)]
        self.storage.set_meta(META_SCHEMAS, msgpack.packb(versions, use_bin_type=True))

    def _load_meta(self) -> None:
        raw = self.storage.get_meta(META_SCHEMAS)
        if raw is not None:
            try:
                versions = msgpack.unpackb(raw, raw=False)
                if type(versions) is not list:
                    raise ValueError("not a list")
            except Exception as exc:  # noqa: BLE001 - msgpack raises several types
                raise StorageError(f"stored schemas are unreadable: {exc}") from None
            pending = [schema_from_canonical(v) for v in versions]
            while pending:  # parents first; tolerate any stored order
                rest = [s for s in pending if any(p not in self.schemas._versions for p in s.parents)]
                for s in pending:
                    if s not in rest:
                        self.schemas.add(s)
                if len(rest) == len(pending):
                    raise StorageError("stored schemas reference unknown parent versions")
                pending = rest
        raw = self.storage.get_meta(META_COLLECTIONS)
        if raw is None:
            return
        self._meta_saved = True
        try:
            rec = msgpack.unpackb(raw, raw=False)
            cols = rec["collections"]
            for c in cols:
                name, tier, idx_defs = c["name"], c["tier"], c["indexes"]
                self._tiering.load([tier])
                col = self.collection(name)
                col._meta = self._tiering.meta(name)
                for d in idx_defs:
                    idx = col._ci.create_index(list(d["fields"]), bool(d["unique"]), d["name"])
                    idx.state = DROPPED
                if len(col._ci):
                    self._indexed[name] = col
                    # Entries are not persisted: a hot collection opens warm and gets its
                    # indexes back on first use (at once when small, else throttled).
                    if col._meta.state == HOT:
                        col._meta.state = WARM
                self._tiering.sync_indexes(name, col._ci)
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"stored collection metadata is unreadable: {exc}") from None

    # ------------------------------------------------------------ schemas

    def define_schema(self, sdl: str) -> dict[str, str]:
        """Register the types of `sdl` (DefraDB-like SDL; see docs/QUERIES.md) as the next
        schema versions of the collections of the same names. Returns {name: version id}
        (the CID of the canonical schema). Unchanged types keep their version. Writes to
        those collections are validated from now on and their blocks carry the version id;
        `@index` fields get indexes. Persisted in storage meta."""
        self._check_open()
        for name in parse_sdl(sdl):   # refuse before registering anything
            check_collection(name)
        before = {n: self.schemas.get(n).version_id for n in self.schemas.names()}
        out = self.schemas.register(sdl)
        changed = {n: s for n, s in out.items() if before.get(n) != s.version_id}
        if changed:
            self._save_schemas()
            self._schemas_changed()
        for name, s in out.items():
            col = self.collection(name)
            for field, unique in s.indexes():
                col.create_index(field, unique=unique)
        return {n: s.version_id for n, s in out.items()}

    def _schemas_changed(self) -> None:
        self._gql.clear()
        for col in self._collections.values():
            col._refresh_schema()
        for name in self.schemas.names():
            if name not in self._collections:
                try:
                    self.collection(name)
                except ValidationError:
                    pass  # a type name that is no collection name (cannot hold documents)

    def register_lens(self, from_version: str, to_version: str, fn: Callable[[dict], dict], *,
                      reverse: Callable[[dict], dict] | None = None) -> None:
        """A function translating a document's user fields from one schema version to
        another (and optionally back). Reads of documents written under an older version go
        through the shortest chain of lenses to the current one. Lenses are code: register
        them again after every open."""
        self._check_open()
        self.schemas.register_lens(from_version, to_version, fn, reverse=reverse)

    def schema_history(self, name: str) -> list[dict]:
        """Every version of a schema, parents before children."""
        self._check_open()
        return [{"version_id": s.version_id, "parents": list(s.parents), "height": s.height,
                 "sdl": s.to_sdl()} for s in self.schemas.history(name)]

    def schema_versions(self) -> dict[str, str]:
        """{collection: current schema version id}."""
        self._check_open()
        return {n: self.schemas.get(n).version_id for n in self.schemas.names()}

    def _heads_text(self, heads: Iterable[bytes]) -> list[str]:
        cache = self._cid_text
        out = []
        for h in sorted(heads):
            t = cache.get(h)
            if t is None:
                if len(cache) >= CID_TEXT_CACHE_MAX:
                    cache.clear()
                t = cache[h] = cidlib.format_cid(h)
            out.append(t)
        return out

    def _doc_schema_id(self, state: DocState) -> str | None:
        """The schema version the document was last written under: that of its newest head
        (by clock, then CID). None: written without a schema."""
        cache = self._head_schema
        best = None
        for h in state.heads:
            e = cache.get(h)
            if e is None:
                ch = self._replica.change(h)
                if len(cache) >= SCHEMA_CACHE_MAX:
                    cache.clear()
                e = cache[h] = (ch.hlc, ch.schema)
            if best is None or (e[0], h) > best[0]:
                best = ((e[0], h), e[1])
        if best is None or best[1] is None:
            return None
        return cidlib.format_cid(best[1])

    def _migrated(self, col: Collection, state: DocState, doc: dict) -> dict:
        sid = self._doc_schema_id(state)
        head = col._schema
        if sid is None or head is None or sid == head.version_id:
            return doc
        reg = self.schemas
        try:
            reg.version(sid)
        except NotFoundError:
            return doc  # written under a version this replica has not been given
        try:
            return reg.migrate(doc, sid, head.version_id, check=False)
        except LensNotFoundError:
            return doc  # no lens: the change was additive (e.g. a new optional field)

    # ------------------------------------------------------------ GraphQL

    def graphql(self, query: str, variables: dict | None = None, *, allow_mutations: bool = True,
                operation_name: str | None = None) -> dict:
        """Run a GraphQL request against the API generated from the schemas (see
        docs/QUERIES.md): `{"data": ..., "errors": [...]}` as the spec shapes it; errors
        carry messages and paths, never a traceback."""
        self._check_open()
        api = self._gql.get(bool(allow_mutations))
        if api is None:
            from .graphql_api import GraphQLAPI
            try:
                api = GraphQLAPI(self.schemas, _GraphQLBackend(self),
                                 allow_mutations=bool(allow_mutations))
            except OstraconError as e:
                return {"errors": [{"message": f"{type(e).__name__}: {e}"}]}
            self._gql[bool(allow_mutations)] = api
        return api.execute(query, variables, operation_name)


    # ------------------------------------------------------------ change feed

    def changes(self, collection: str | None = None, after: str | None = None,
                limit: int | None = None) -> tuple[list[ChangeEvent], str]:
        """Change events after the cursor `after`, and the cursor to resume from."""
        self._check_open()
        return self.feed.since(after, collection, limit)

    def subscribe(self, callback: Callable[[ChangeEvent], None] | None = None, *,
                  collection: str | None = None, buffer: int = SUBSCRIBER_BUFFER) -> Subscription:
        self._check_open()
        return self.feed.subscribe(collection, buffer, callback)


class _GraphQLBackend:
    """The five operations graphql_api.GraphQLAPI needs, over Collection methods (so the
    same validation, uniqueness, tiers and planner apply as to native calls)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def find(self, collection: str, filter: Any, order: Any, limit: Any, offset: Any,
             cid: str | None) -> list[dict]:
        col = self.db.collection(collection)
        if cid is None:
            return col.find(filter, order, limit, offset)
        # `cid`: the document as it was at that commit (DefraDB's time-travel query).
        raw = cidlib.parse_cid(cid)
        info = self.db._replica.info.get(raw)
        if info is None:
            raise NotFoundError(f"no commit {cid}")
        if info[0] != collection:
            return []
        doc = col.get(info[1], at=cid, include_deleted=True)
        if doc is None or doc["_deleted"] or not compile_filter(filter).match(doc):
            return []
        return [doc]

    def create(self, collection: str, doc: dict) -> dict:
        col = self.db.collection(collection)
        return col.get(col.create(doc))  # type: ignore[return-value]

    def update(self, collection: str, doc_id: str, fields: dict) -> dict:
        col = self.db.collection(collection)
        col.patch(doc_id, fields)
        return col.get(doc_id)  # type: ignore[return-value]

    def delete(self, collection: str, doc_id: str) -> dict | None:
        col = self.db.collection(collection)
        col.delete(doc_id)
        return col.get(doc_id, include_deleted=True)

    def commits(self, doc_id: str) -> list[dict]:
        """Every commit of the document(s) with this id, in any collection: cid, height,
        links (parents), actor, signature (hex Ed25519 signature of the seal covering the
        commit; null until the batch is flushed), collection, docID, schemaVersionId."""
        db = self.db
        check_doc_id(doc_id)
        r = db._replica
        out = []
        for name in db.collections():
            if r.doc(name, doc_id) is None:
                continue
            for c in db.collection(name).history(doc_id, allow_pruned=True):
                if "cid" not in c:
                    continue  # the pruned-history marker
                actor = bytes.fromhex(c["actor"])
                out.append({"cid": c["cid"], "height": c["height"], "links": c["parents"],
                            "actor": c["actor"], "signature": _seal_signature(r, actor, c["seq"]),
                            "collection": name, "docID": doc_id,
                            "schemaVersionId": c["schema"]})
        return out


def _seal_signature(r: Replica, actor: bytes, seq: int) -> str | None:
    for first, last, data in r.seals.get(actor, ()):
        if first <= seq <= last:
            return decode_seal(data).signature.hex()
    return None


IDENTITY_FILE = "identity.key"


def open_database(path: Any = None, *, identity: Any = None, clock: Callable[[], int] | None = None,
                  storage: Storage | None = None, crypto: Any = None, durability: str = "flush",
                  read_only: bool = False, repair: bool = False, require_signatures: bool = True,
                  random_bytes: Callable[[int], bytes] | None = None, **limits: Any) -> Database:
    """Open (or create) a database.

    path None → in memory. A directory path → durable file storage (see docs/STORAGE.md);
    the directory's identity is kept in `identity.key` (mode 0600) unless one is given.
    clock: wall time in ms (default: the system clock). random_bytes: id randomness.
    """
    import os

    from .crypto import default_backend
    from .crypto.identity import Identity

    crypto = crypto or default_backend()
    if storage is None:
        if path is None:
            from .storage.memory import MemoryStorage
            storage = MemoryStorage()
        else:
            from .storage.file import FileStorage
            storage = FileStorage(os.fspath(path), durability=durability, read_only=read_only,
                                  repair=repair)
    try:
        if identity is None:
            if path is not None:
                key_path = os.path.join(os.fspath(path), IDENTITY_FILE)
                if read_only:
                    identity = (Identity.load(key_path, crypto=crypto) if os.path.exists(key_path)
                                else Identity.generate(crypto))
                else:
                    identity = Identity.load_or_generate(key_path, crypto=crypto)
            else:
                identity = Identity.generate(crypto)
        return Database(storage, identity=identity, crypto=crypto, clock=clock,
                        random_bytes=random_bytes, require_signatures=require_signatures, **limits)
    except BaseException:
        storage.close()
        raise
