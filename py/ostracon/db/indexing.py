"""Secondary indexes, their rebuilds and the hot/warm/cold tiers of collections.

Index entries live in memory. Small collections (at most `index_sync_build_docs`
documents, tombstones included) get their indexes built synchronously; larger ones get a
rebuild job stepped by `step()` under the throttle of `RebuildScheduler` (docs/QUERIES.md).
Index definitions and tier records are kept in storage meta (durable at the next flush);
entries are not persisted: a hot collection opens warm and gets its indexes back on first
use (at once when small, else under the throttle).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack

from ..core.errors import OstraconError, StorageError, ValidationError
from ..core.query.index import BUILDING, DROPPED, READY, CollectionIndexes, IndexCatalog
from ..core.query.rebuild import (
    BATCH_SIZE,
    COLD,
    COLD_AFTER_MS,
    HOT,
    MAX_CONCURRENT,
    RATE_DOCS_PER_S,
    WARM,
    WARM_AFTER_MS,
    CollectionMeta,
    RebuildEvent,
    RebuildScheduler,
    TieringPolicy,
)
from ..core.state import DocState
from ..storage.base import Storage
from .views import DocViews

#: Collections with at most this many documents (tombstones included) get their indexes
#: built synchronously (at create_index, or when a warm collection is used again): ~10-25 ms
#: of CPU, less than the second the rebuild throttle (5,000 docs/s) would make queries wait.
#: Larger collections are rebuilt by throttled jobs.
INDEX_SYNC_BUILD_DOCS = 5_000
#: How long a query waits for an index being built before it raises IndexBuildingError
#: (when no scan within fallback_docs_max can answer it): under the default throttle
#: (5,000 docs/s) a collection of 150,000 documents is indexed in this time. Only with a
#: driver; without one the query raises at once (the caller steps `tick()`).
INDEX_WAIT_MS = 30_000
#: Rebuild events kept for inspection (`db.rebuild_status()`).
REBUILD_EVENTS_KEPT = 100
#: Storage meta key of index definitions and tier records (a small msgpack value).
META_COLLECTIONS = "ostracon/collections"


class IndexedCollection:
    """What indexing keeps per collection: its indexes, its tier record, its documents."""

    __slots__ = ("name", "ci", "meta", "views")

    def __init__(self, name: str, ci: CollectionIndexes, meta: CollectionMeta, views: DocViews) -> None:
        self.name = name
        self.ci = ci
        self.meta = meta
        self.views = views

    def fetch(self, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
        """Rebuild jobs read live documents in id order through this (views, no copies)."""
        return self.views.scan("", cursor, limit, False, heads=False)


class Indexing:
    """Index catalog, rebuild scheduler and tiering policy of one database."""

    def __init__(self, *, index_sync_build_docs: int = INDEX_SYNC_BUILD_DOCS,
                 rebuild_batch_size: int = BATCH_SIZE,
                 rebuild_rate_docs_per_s: int = RATE_DOCS_PER_S,
                 rebuild_max_concurrent: int = MAX_CONCURRENT, auto_tier: bool = False,
                 warm_after_ms: int = WARM_AFTER_MS, cold_after_ms: int = COLD_AFTER_MS,
                 on_error: Callable[[Exception], None] = lambda exc: None,
                 on_meta_change: Callable[[], None] = lambda: None) -> None:
        if type(index_sync_build_docs) is not int or index_sync_build_docs < 0:
            raise ValidationError("index_sync_build_docs must be an int >= 0")
        self.index_sync_build_docs = index_sync_build_docs
        self.auto_tier = bool(auto_tier)
        self.catalog = IndexCatalog()
        self.scheduler = RebuildScheduler(batch_size=rebuild_batch_size,
                                          rate_docs_per_s=rebuild_rate_docs_per_s,
                                          max_concurrent=rebuild_max_concurrent)
        self.tiering = TieringPolicy(warm_after_ms=warm_after_ms, cold_after_ms=cold_after_ms)
        self.events: deque[RebuildEvent] = deque(maxlen=REBUILD_EVENTS_KEPT)
        self.entries: dict[str, IndexedCollection] = {}
        self.indexed: dict[str, IndexedCollection] = {}   # only collections with >= 1 index
        self.meta_saved = False
        self.reopened: list[str] = []
        self.on_error = on_error
        self.changed = on_meta_change  # definitions or tiers changed: save them

    def register(self, name: str, views: DocViews, now_ms: int) -> IndexedCollection:
        entry = IndexedCollection(name, self.catalog.collection(name),
                                  self.tiering.meta(name, now_ms), views)
        self.entries[name] = entry
        return entry

    def sync_states(self, entry: IndexedCollection) -> None:
        self.tiering.sync_indexes(entry.name, entry.ci)

    def eta_ms(self, name: str, remaining_docs: int) -> int:
        return self.scheduler.eta_ms(name, remaining_docs)

    # ------------------------------------------------------------ keeping indexes current

    def maintain(self, name: str, doc_id: str, state: DocState, now_ms: int) -> None:
        """Feed one visible change to the collection's indexes (one dict lookup when it has
        none). The index remembers the key it last stored per document, so the old document
        is never needed (old=None)."""
        entry = self.indexed.get(name)
        if entry is None or entry.meta.state != HOT:
            return  # warm/cold: every index is dropped and rebuilt on the next access
        new = None
        if not state.deleted:
            try:
                new = entry.views.view(state, False)
            except OstraconError:  # a failing lens: index the stored fields rather than nothing
                new = state.to_doc()
        try:
            self.catalog.on_change(name, doc_id, None, new)
        except Exception as exc:  # noqa: BLE001 - an index missed this change: a gap
            self.on_error(exc)
            self.rebuild(entry, "gap", now_ms)

    def forget(self, name: str, doc_id: str, now_ms: int) -> None:
        """A document an undone batch had created is gone again: out of the indexes and of
        the collection's sorted id list."""
        entry = self.entries.get(name)
        if entry is None:
            return
        ids = entry.views.ids
        if ids is not None:
            i = bisect.bisect_left(ids, doc_id)
            if i < len(ids) and ids[i] == doc_id:
                del ids[i]
        if entry.meta.state == HOT and name in self.indexed:
            try:
                self.catalog.on_change(name, doc_id, None, None)
            except Exception as exc:  # noqa: BLE001 - an index missed this change: a gap
                self.on_error(exc)
                self.rebuild(entry, "gap", now_ms)

    def _small(self, entry: IndexedCollection) -> bool:
        return entry.views.count_all() <= self.index_sync_build_docs

    def build_now(self, entry: IndexedCollection) -> None:
        """Build every index of the collection that is not ready, synchronously."""
        pending = [i for i in entry.ci if i.state != READY]
        if not pending:
            return
        self.scheduler.cancel(entry.name)
        views = entry.views.iter_views(False)
        for idx in pending:
            idx.build(views)
            idx.state = READY
        self.sync_states(entry)

    def rebuild(self, entry: IndexedCollection, reason: str, now_ms: int) -> None:
        """Empty and refill every index: at once when small, else a throttled job."""
        if not len(entry.ci) or entry.meta.state != HOT:
            return  # nothing to do / warm and cold collections rebuild when used again
        if self._small(entry):
            entry.ci.begin_rebuild()
            self.build_now(entry)
        else:
            self.scheduler.schedule(entry.name, list(entry.ci), entry.fetch, reason=reason,
                                    now_ms=now_ms)
            self.sync_states(entry)

    def create_index(self, entry: IndexedCollection, fields: Any, unique: bool,
                     name: str | None, now_ms: int) -> str:
        ci = entry.ci
        before = {i.name for i in ci}
        if self._small(entry):
            idx = ci.create_index(fields, unique, name, docs=entry.views.iter_views(False))
        else:
            idx = ci.create_index(fields, unique, name)
            if idx.name not in before:
                self.scheduler.schedule(entry.name, [idx], entry.fetch, reason="new_index",
                                        now_ms=now_ms)
        self.indexed[entry.name] = entry
        self.sync_states(entry)
        if idx.name not in before:
            self.changed()
        return idx.name

    def drop_index(self, entry: IndexedCollection, name: str) -> None:
        idx = entry.ci.get(name)
        entry.ci.drop_index(name)
        for job in self.scheduler.running + self.scheduler.pending:
            if idx in job.indexes:
                job.indexes.remove(idx)
        if not len(entry.ci):
            self.indexed.pop(entry.name, None)
        self.sync_states(entry)
        self.changed()

    def step(self, now_ms: int) -> list[RebuildEvent]:
        """One throttled step of the running rebuild jobs; their events."""
        if self.scheduler.idle():
            return []
        events = self.scheduler.step(now_ms)
        for ev in events:
            self.events.append(ev)
            if ev.kind in ("done", "failed"):
                entry = self.entries.get(ev.collection)
                if entry is not None:
                    self.sync_states(entry)
        return events

    def idle(self) -> bool:
        return self.scheduler.idle()

    def progress(self, name: str) -> int:
        """Documents processed by the running or pending rebuild of `name` (0: none)."""
        for job in self.scheduler.running + self.scheduler.pending:
            if job.collection == name:
                return job.processed
        return 0

    def next_wakeup_ms(self, now_ms: int) -> int | None:
        """When a rebuild step can do work next (None: no rebuild pending)."""
        return self.scheduler.next_wakeup_ms(now_ms)

    def take_reopened(self) -> list[IndexedCollection]:
        """Collections whose indexes were live when the database was last closed (they
        open warm): the driver brings them back at once instead of on first use."""
        out = [self.entries[n] for n in self.reopened if n in self.entries
               and self.entries[n].meta.state == WARM]
        self.reopened = []
        return out

    def status(self, collection: str | None = None) -> list[dict]:
        return self.scheduler.status(collection)

    # ------------------------------------------------------------ tiers

    def wake(self, entry: IndexedCollection, now_ms: int) -> None:
        """An access to a non-hot collection (warm, or cold: cold → warm first): hot again,
        indexes rebuilt (at once when small, else under the throttle)."""
        m = self.tiering.touch(entry.name, now_ms)
        entry.meta = m
        if m.state == WARM:
            self.tiering.activate(entry.name, entry.ci, self.scheduler, entry.fetch, now_ms)
            entry.meta = self.tiering.meta(entry.name)
            if self._small(entry):
                self.build_now(entry)
            self.changed()

    def ready_unique(self, entry: IndexedCollection) -> None:
        """Finish every unique index of the collection that is still being rebuilt, at once.
        A local write is checked against its unique indexes before it is applied; an index
        part-way through a throttled rebuild lacks the documents the job has not reached
        yet, so the check would let a duplicate through that a hot collection refuses. The
        cost (one pass over the collection's views) is paid once per rebuild, by the first
        write that needs the answer."""
        building = [i for i in entry.ci if i.unique and i.state == BUILDING]
        if not building:
            return
        for job in self.scheduler.running + self.scheduler.pending:
            for idx in building:
                if idx in job.indexes:
                    job.indexes.remove(idx)
        views = entry.views.iter_views(False)
        for idx in building:
            idx.build(views)
            idx.state = READY
        self.sync_states(entry)

    def set_tier(self, entry: IndexedCollection, tier: str, now_ms: int) -> str:
        if tier not in (HOT, WARM, COLD):
            raise ValidationError(f"tier must be one of hot, warm, cold; not {tier!r}")
        name, pol = entry.name, self.tiering
        state = entry.meta.state
        if tier == COLD:
            pol.make_cold(name, now_ms, self.scheduler)
            entry.ci.drop_data()
            pol.sync_indexes(name, entry.ci)
            entry.views.forget_order()  # what a cold collection can give back without losing data
        elif tier == WARM:
            if state == COLD:
                pol.restore(name, now_ms)
            else:
                pol.make_warm(name, entry.ci, now_ms, self.scheduler)
        else:
            if state == COLD:
                pol.restore(name, now_ms)
            if pol.meta(name).state == WARM:
                self.wake(entry, now_ms)
        entry.meta = pol.meta(name)
        self.changed()
        return entry.meta.state

    def sweep(self, now_ms: int) -> None:
        """Demote idle collections (auto_tier)."""
        for e in self.entries.values():  # first sighting: idle time starts now
            if e.meta.last_access_ms == 0:
                e.meta.last_access_ms = now_ms
        changes = self.tiering.sweep(now_ms)
        for name, _, to in changes:
            entry = self.entries.get(name)
            self.scheduler.cancel(name)
            if entry is not None:
                entry.ci.drop_data()
                self.sync_states(entry)
                entry.meta = self.tiering.meta(name)
                if to == COLD:
                    entry.views.forget_order()
        if changes:
            self.changed()

    # ------------------------------------------------------------ persisted metadata

    def meta_record(self) -> bytes | None:
        """Index definitions and tier records as stored in storage meta (`META_COLLECTIONS`);
        None when there is nothing to store."""
        cols = []
        for name in sorted(self.entries):
            e = self.entries[name]
            if not len(e.ci) and e.meta.state == HOT:
                continue
            self.sync_states(e)
            cols.append({"name": name, "tier": e.meta.to_record(),
                         "indexes": [{"name": i.name, "fields": list(i.definition.fields),
                                      "unique": i.unique} for i in e.ci]})
        if not cols and not self.meta_saved:
            return None
        self.meta_saved = True
        return msgpack.packb({"v": 1, "collections": cols}, use_bin_type=True)

    def load(self, storage: Storage, open_collection: Callable[[str], IndexedCollection]) -> None:
        """Definitions and tiers from storage meta; `open_collection(name)` registers a
        collection and returns its entry."""
        raw = storage.get_meta(META_COLLECTIONS)
        if raw is None:
            return
        self.meta_saved = True
        try:
            rec = msgpack.unpackb(raw, raw=False)
            for c in rec["collections"]:
                name, tier, idx_defs = c["name"], c["tier"], c["indexes"]
                self.tiering.load([tier])
                entry = open_collection(name)
                entry.meta = self.tiering.meta(name)
                for d in idx_defs:
                    idx = entry.ci.create_index(list(d["fields"]), bool(d["unique"]), d["name"])
                    idx.state = DROPPED
                if len(entry.ci):
                    self.indexed[name] = entry
                    # Entries are not persisted: a hot collection opens warm and gets its
                    # indexes back on first use (at once when small, else throttled).
                    if entry.meta.state == HOT:
                        entry.meta.state = WARM
                        self.reopened.append(name)
                self.sync_states(entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"stored collection metadata is unreadable: {exc}") from None
