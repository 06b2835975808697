"""Database: the public face. Drives the pure core with a storage adapter, a crypto backend,
an identity and a wall clock (all injectable; defaults read here, never in the core).

Writes are memory first: a write validates, builds a block, applies it and returns; the
write sink (sink.py) persists in batches. `flush()` returns only when every earlier write
is durable. Only sealed, durable blocks are ever offered to other replicas. The query layer
(docs/QUERIES.md): every visible change goes through the engine's `publish`, which feeds the
change feed and the indexes (indexing.py); `tick()` steps index rebuilds and idle tiering;
schemas (schemas.py) validate writes and translate reads; `graphql()` serves the generated
GraphQL API (graphql.py).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.block import check_collection
from ..core.clock import DEFAULT_MAX_CLOCK_SKEW_MS
from ..core.errors import ValidationError
from ..core.feed import (
    FEED_RETENTION,
    MAX_FEED_RETENTION,
    PAYLOAD_MAX_BYTES,
    SUBSCRIBER_BUFFER,
    ChangeEvent,
    ChangeFeed,
    Subscription,
)
from ..core.limits import MAX_PORTABLE_INT, MAX_SAFE_INT, check_callable_option, check_int_option
from ..core.query.planner import FALLBACK_DOCS_MAX
from ..core.query.rebuild import (
    BATCH_SIZE,
    COLD_AFTER_MS,
    MAX_CONCURRENT,
    RATE_DOCS_PER_S,
    WARM_AFTER_MS,
    RebuildEvent,
)
from ..core.query.schema_registry import SchemaRegistry
from ..core.replica import MAX_PENDING_BLOCKS, ApplyResult, Replica
from ..storage.base import Storage
from . import driver as driverlib
from . import verification
from .collection import Collection
from .compaction import COMPACT_MARGIN_BYTES, STEP_DOCS, Compaction  # noqa: F401  (re-exported)
from .engine import Engine
from .graphql_methods import GraphQLMethods
from .indexing import (
    INDEX_SYNC_BUILD_DOCS,
    INDEX_WAIT_MS,
    META_COLLECTIONS,
    IndexedCollection,
    Indexing,
)
from .locking import locked
from .maintenance import KEEP_SNAPSHOTS, MaintenanceMixin  # noqa: F401  (re-exported)
from .observer import FOLLOW_INTERVAL_MS, Follower, ObserverMixin
from .provenance import ProvenanceMixin
from .replication import ReplicationMixin
from .schemas import META_SCHEMAS, SCHEMA_COLLECTION, SchemaCatalog, SchemaMethods
from .sending import SendMixin
from .sink import SINK_BATCH_OPS, SINK_INTERVAL_MS, SINK_MAX_QUEUED, WriteSink

#: Who flushes a full batch when no driver runs (`Database` `sink_size_trigger`).
SIZE_TRIGGERS = ("write", "tick")


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Database(ObserverMixin, ProvenanceMixin, SendMixin, SchemaMethods, ReplicationMixin, MaintenanceMixin,
               GraphQLMethods):
    """An open Ostracon database. Use `ostracon.open(...)`.

    Every public method may be called from any thread (docs/STORAGE.md, Threads).
    `driver`: None (default) runs a background driver thread natively unless a `clock` is
    injected (then the caller drives time with `tick()`); True/False force it on/off. Where
    threads cannot start (Pyodide) there is no driver and the host's timer calls `tick()`.

    Lifecycle limits (docs/STORAGE.md): `sink_batch_ops` (100) and `sink_interval_ms` (5,000)
    are the sink's size and time triggers; `sink_max_queued` (10,000) changes waiting make a
    writer flush itself (backpressure); `index_wait_ms` (30,000) bounds how long a query waits
    for an index being built; `feed_payload` (True) and `feed_payload_max_bytes` (32 KiB) say
    whether change events carry the fields and up to what size (core/feed.py);
    `on_sink_error(exc)` is called when a background flush fails; `sink_io_wait_ms` (None:
    no bound) bounds how long a flush, compaction or close waits for another one's storage I/O
    before it raises StorageError (db/sink.py `IoLock`; the browser host uses 0);
    `sink_size_trigger` ("write") says who flushes a full batch when no driver runs: "write",
    the write that filled it (once its call returns); "tick", the next `tick()`, as the
    native driver does on its thread. The browser host uses "tick": its worker has one
    thread, so a flush in the write path stops the writing call for an IndexedDB transaction
    and a signature every `sink_batch_ops` writes (~15% of a burst of writes), while its idle
    tick runs when the call is done. Writes still flush themselves at `sink_max_queued`
    changes (backpressure), and the time trigger is unchanged (a write flushes once the
    oldest waiting change is `sink_interval_ms` old, so a stream of writes that leaves no
    room for a tick is still durable within it). Raises ValidationError for another value;
    `location` names the database in messages; `lazy_snapshot` (False) builds the documents
    of the stored snapshot on first use instead of at open (core/snapshot.py `load`: the
    browser opens 10,000 documents without building them; damage inside a document's row is
    then reported at its first use; states are built under the database's state lock, like
    every read of them).

    Observers (db/observer.py): a read-only open follows the writer's flushes. `follow`:
    None (default) follows when the storage is read-only and no `clock` is injected;
    True/False force it (without a thread, call `refresh()`). `follow_interval_ms` (250) is
    the pause between two looks.
    """

    def __init__(self, storage: Storage, *, identity: Any, crypto: Any,
                 clock: Callable[[], int] | None = None, random_bytes: Callable[[int], bytes] | None = None,
                 require_signatures: bool = True, sink_batch_ops: int = SINK_BATCH_OPS,
                 sink_interval_ms: int = SINK_INTERVAL_MS, feed_retention: int = FEED_RETENTION,
                 feed_payload: bool = True, feed_payload_max_bytes: int = PAYLOAD_MAX_BYTES,
                 max_pending_blocks: int = MAX_PENDING_BLOCKS,
                 max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS,
                 repair: bool = False, on_corrupt: str = "raise",
                 fallback_docs_max: int = FALLBACK_DOCS_MAX,
                 index_sync_build_docs: int = INDEX_SYNC_BUILD_DOCS,
                 rebuild_batch_size: int = BATCH_SIZE, rebuild_rate_docs_per_s: int = RATE_DOCS_PER_S,
                 rebuild_max_concurrent: int = MAX_CONCURRENT, auto_tier: bool = False,
                 warm_after_ms: int = WARM_AFTER_MS, cold_after_ms: int = COLD_AFTER_MS,
                 sink_max_queued: int = SINK_MAX_QUEUED, index_wait_ms: int = INDEX_WAIT_MS,
                 driver: bool | None = None, lazy_snapshot: bool = False, follow: bool | None = None,
                 follow_interval_ms: int = FOLLOW_INTERVAL_MS,
                 on_sink_error: Callable[[Exception], None] | None = None,
                 location: str | None = None, sink_io_wait_ms: int | None = None,
                 sink_size_trigger: str = "write") -> None:
        # Every limit is checked here, so an out-of-range value is the same ValidationError
        # natively and in 32-bit WebAssembly (where a C size would raise OverflowError).
        for pname, v, lo, hi in (
                ("sink_batch_ops", sink_batch_ops, 1, MAX_PORTABLE_INT),
                ("sink_interval_ms", sink_interval_ms, 0, MAX_SAFE_INT),
                ("feed_retention", feed_retention, 1, MAX_FEED_RETENTION),
                ("max_pending_blocks", max_pending_blocks, 1, MAX_PORTABLE_INT),
                ("fallback_docs_max", fallback_docs_max, 0, MAX_PORTABLE_INT),
                ("index_sync_build_docs", index_sync_build_docs, 0, MAX_PORTABLE_INT),
                ("rebuild_batch_size", rebuild_batch_size, 1, MAX_PORTABLE_INT),
                ("rebuild_rate_docs_per_s", rebuild_rate_docs_per_s, 1, MAX_PORTABLE_INT),
                ("rebuild_max_concurrent", rebuild_max_concurrent, 1, MAX_PORTABLE_INT),
                ("warm_after_ms", warm_after_ms, 0, MAX_SAFE_INT),
                ("cold_after_ms", cold_after_ms, 0, MAX_SAFE_INT),
                ("sink_max_queued", sink_max_queued, 1, MAX_PORTABLE_INT),
                ("index_wait_ms", index_wait_ms, 0, MAX_SAFE_INT),
                ("follow_interval_ms", follow_interval_ms, 1, MAX_SAFE_INT),
                ("sink_io_wait_ms", 0 if sink_io_wait_ms is None else sink_io_wait_ms, 0, MAX_SAFE_INT)):
            check_int_option(pname, v, lo, hi)
        for pname, fn in (("clock", clock), ("random_bytes", random_bytes), ("on_sink_error", on_sink_error)):
            check_callable_option(pname, fn)
        if sink_size_trigger not in SIZE_TRIGGERS:
            raise ValidationError(f"sink_size_trigger must be one of {', '.join(map(repr, SIZE_TRIGGERS))}")
        self._constructed = False
        self.storage = storage
        self.identity = identity
        self.crypto = crypto
        self.clock = clock or _wall_ms
        self.index_wait_ms = index_wait_ms
        self.location = location   # the directory, for messages (None: given storage / memory)
        self._meta_dirty = False
        indexing = Indexing(index_sync_build_docs=index_sync_build_docs,
                            rebuild_batch_size=rebuild_batch_size,
                            rebuild_rate_docs_per_s=rebuild_rate_docs_per_s,
                            rebuild_max_concurrent=rebuild_max_concurrent, auto_tier=auto_tier,
                            warm_after_ms=warm_after_ms, cold_after_ms=cold_after_ms,
                            on_error=self._callback_error, on_meta_change=self._meta_changed)
        self._new_replica = lambda: Replica(identity.actor, require_signatures=require_signatures,
                                            verify=crypto.verify_actor, max_pending_blocks=max_pending_blocks,
                                            max_clock_skew_ms=max_clock_skew_ms)
        loaded = verification.load(
            self._new_replica,
            storage, crypto.verify_actor, self.clock(), repair=repair, on_corrupt=on_corrupt,
            lazy=lazy_snapshot)
        replica, seal_chain = loaded.replica, loaded.chain
        self._open_notes, self._open_problems = loaded.notes, loaded.problems

        def record_flush(batch: list[bytes], own_seq: int) -> None:
            verification.record_flush(replica, storage, seal_chain, identity.sign, batch, own_seq)

        self._seal_chain = seal_chain
        sink = WriteSink(storage, replica, identity.sign, threading.RLock(), batch_ops=sink_batch_ops,
                         interval_ms=sink_interval_ms, max_queued=sink_max_queued,
                         on_batch=record_flush, io_wait_ms=sink_io_wait_ms)
        replica.own_durable = replica.seq_of(replica.actor)   # all from storage
        sink.on_error = on_sink_error
        sink.meta_source = self._meta_items
        self._engine = self._e = Engine(storage, replica, sink, indexing, SchemaCatalog(replica),
                                        clock=self.clock,
                                        random_bytes=random_bytes or crypto.random_bytes,
                                        fallback_docs_max=fallback_docs_max)
        self._engine.index_wait_ms = index_wait_ms
        self._engine.size_flush_on_write = sink_size_trigger == "write"
        self._engine.release_held = self._release_held
        self._collections: dict[str, Collection] = {}
        self._gql: dict[bool, Any] = {}
        self._compacted_at: int | None = None  # record position of this session's last snapshot
        self._snapshot_format = loaded.snapshot_format  # an older one is rewritten (snapshot_outdated)
        self.last_apply: ApplyResult = ApplyResult()
        self._engine.feed = ChangeFeed(self._engine.random_bytes(6).hex(), feed_retention,
                                       payload=feed_payload, payload_max_bytes=feed_payload_max_bytes,
                                       guard=self._engine.lock)
        self._engine.schemas.load(storage)
        self._engine.schemas.adopt()   # versions that arrived by sync (meta is saved lazily)
        indexing.load(storage, self._open_entry)
        self._driver: driverlib.Driver | None = None
        if driver is None:
            driver = clock is None
        if driver and not storage.read_only:
            d = driverlib.Driver(self._engine, f"ostracon-driver-{self.actor[:8]}")
            if d.start():
                self._driver = d
                self._engine.kick = d.kick
                d.kick()
        self._follow_lock = threading.Lock()
        self._follow = {"following": False, "interval_ms": follow_interval_ms, "looks": 0,
                        "blocks": 0, "resets": 0, "last_error": None, "stopped": None}
        self._follower: Follower | None = None
        if follow is None:
            follow = storage.read_only and clock is None
        if follow:
            fl = Follower(self, follow_interval_ms, f"ostracon-follow-{self.actor[:8]}")
            if fl.start():
                self._follower = fl
                self._follow["following"] = True
        driverlib.register(self)
        self._constructed = True   # construction finished: __del__ may now warn

    def __del__(self) -> None:
        if not getattr(self, "_constructed", False):
            return  # construction failed: nothing of ours is open
        if self._engine.closed:
            return
        where = self.location or "in memory"
        warnings.warn(f"ostracon database {where} (actor {self.actor[:16]}) was never "
                      f"closed; closing it now", ResourceWarning, stacklevel=2)
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing to raise to in a finalizer
            pass

    def _meta_changed(self) -> None:
        self._meta_dirty = True

    def _meta_items(self) -> list[tuple[str, bytes]]:
        """Storage meta to write with the next batch (called under the state lock)."""
        if not self._meta_dirty:
            return []
        self._meta_dirty = False
        e = self._engine
        out = []
        rec = e.indexing.meta_record()
        if rec is not None:
            out.append((META_COLLECTIONS, rec))
        if e.schemas.dirty:
            e.schemas.dirty = False
            out.append((META_SCHEMAS, e.schemas.meta_record()))
        return out

    def _callback_error(self, exc: Exception) -> None:
        self._engine.callback_error(exc)

    # ------------------------------------------------------------ parts, for tools

    @property
    def replica(self) -> Replica:
        """The engine's replica, for sync and verification tools: read it, change it only
        through the methods of this class."""
        return self._engine.replica

    @property
    def feed(self) -> ChangeFeed:
        feed = self._engine.feed
        assert feed is not None
        return feed

    @property
    def schemas(self) -> SchemaRegistry:
        return self._engine.schemas.registry

    @property
    def indexing(self) -> Indexing:
        """Index catalog, rebuild scheduler and tier policy (for tools and tests)."""
        return self._engine.indexing

    @property
    def sink(self) -> WriteSink:
        return self._engine.sink

    @property
    def sink_batch_ops(self) -> int:
        return self._engine.sink.batch_ops

    @property
    def sink_interval_ms(self) -> int:
        return self._engine.sink.interval_ms

    @property
    def fallback_docs_max(self) -> int:
        """Documents (tombstones included) a query may scan without an index."""
        return self._engine.fallback_docs_max

    @fallback_docs_max.setter
    def fallback_docs_max(self, value: int) -> None:
        if type(value) is not int or value < 0:
            raise ValidationError("fallback_docs_max must be an int >= 0")
        self._engine.fallback_docs_max = value

    @property
    def callback_errors(self) -> list[Exception]:
        """Exceptions raised by subscriber callbacks and index maintenance (newest last)."""
        return self._engine.callback_errors

    @property
    def rebuild_events(self) -> deque[RebuildEvent]:
        return self._engine.indexing.events

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Database:
        self._engine.check_open()  # a closed database is not reopened by `with` (ClosedError)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Flush everything, stop the driver and close storage. Writes after close (or
        racing with it on other threads) raise ClosedError; every write that returned
        before is durable when close returns. Idempotent."""
        e = self._engine
        with e.lock:
            if e.closed:
                return
            if not self.storage.read_only:
                e.texts.commit_all()   # open text bursts become blocks before the last flush
            e.closed = True
            self._abandon_compaction()   # a snapshot in steps is never swapped in after close
            if e.indexing.meta_saved:
                self._meta_dirty = True   # last access times
        driverlib.unregister(self)
        try:
            if self._follower is not None:
                self._follower.stop()
            if self._driver is not None:
                self._driver.stop()
            if not self.storage.read_only:
                e.sink.flush()
        finally:
            with e.sink.io_lock:
                self.storage.close()
            with e.lock:
                e.changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._engine.closed

    @property
    def actor(self) -> str:
        return self._engine.replica.actor.hex()

    @locked
    def collection(self, name: str) -> Collection:
        self._engine.check_open()
        col = self._collections.get(name)
        if col is None:
            check_collection(name)
            if name == SCHEMA_COLLECTION:
                raise ValidationError(f"{name!r} is reserved (schema versions; see schema_history())")
            col = self._collections[name] = Collection(self, self._engine, name)
        return col

    def _open_entry(self, name: str) -> IndexedCollection:
        self.collection(name)
        return self._engine.indexing.entries[name]

    @locked
    def collections(self) -> list[str]:
        """Names of the collections that hold documents, sorted. ClosedError after close."""
        self._engine.check_open()
        return sorted(n for n in self._engine.replica.collections if n != SCHEMA_COLLECTION)

    # ------------------------------------------------------------ sink

    def tick(self) -> list[RebuildEvent]:
        """One step of background work: fires the sink's time trigger, steps index rebuilds
        under their throttle, and (with auto_tier) demotes idle collections. Returns the
        rebuild events of this step."""
        return self._engine.background_step(self._engine.clock())

    def flush(self) -> None:
        """Return once every earlier write (of any thread) is durable; raise StorageError if
        it is not.

        A failed background flush left its batch queued; this retries it, so an error is
        raised here exactly when something acknowledged-looking is still not durable.
        Must not be called from inside a subscriber callback (it waits for the disk)."""
        e = self._engine
        e.check_open()
        if self.storage.read_only:
            return
        if e.depth():
            raise ValidationError("flush() cannot be called from inside a database callback")
        with e.lock:
            e.texts.commit_all()
        e.sink.flush()

    @locked
    def flush_text(self) -> None:
        """Commit every open text editing burst now (db/text.py), without waiting for
        storage; `flush()` does this too and then makes everything durable."""
        self._engine.check_open()
        self._engine.texts.commit_all()

    @property
    def pending_writes(self) -> int:
        """Changes not yet durable."""
        return self._engine.sink.changes

    @property
    def sink_status(self) -> dict:
        """The write sink: queued (changes not yet durable), queued_total, durable_total,
        flushes, errors (failed background flushes) and last_error (None once a flush
        succeeded again), driver (whether a background driver runs)."""
        out = self._engine.sink.status()
        out["driver"] = self._engine.driven
        return out

    # ------------------------------------------------------------ sync

    async def sync(self, relay_url: str, space: Any, **options: Any) -> Any:
        """Start syncing with `space` through the relay (asyncio). Returns the running client:
        `await h.wait_synced()`, `h.status`, `await h.stop()`. See docs/SYNC.md."""
        self._engine.check_open()
        import sys
        if sys.platform == "emscripten":
            from ..runtime.browser.transport import start_sync
        else:
            from ..sync.native import start_sync
        return await start_sync(self, relay_url, space, **options)

    def sync_blocking(self, relay_url: str, space: Any, timeout: float = 30.0, **options: Any) -> Any:
        """For scripts: connect, exchange everything, disconnect; returns the final status.
        `timeout` is in seconds, a finite number > 0 (else ValidationError)."""
        self._engine.check_open()
        if type(timeout) not in (int, float) or not 0 < timeout < float("inf"):
            raise ValidationError(f"timeout must be a finite number of seconds > 0, got {timeout!r:.40}")
        from ..sync.native import sync_once_blocking
        return sync_once_blocking(self, relay_url, space, timeout=timeout, **options)

    # ------------------------------------------------------------ indexes, tiers, metadata

    @locked
    def rebuild_status(self, collection: str | None = None) -> list[dict]:
        """Rebuild jobs (running, pending, recently finished) with their progress."""
        self._engine.check_open()
        return self._engine.indexing.status(collection)

    # ------------------------------------------------------------ change feed

    @locked
    def changes(self, collection: str | None = None, after: str | None = None,
                limit: int | None = None) -> tuple[list[ChangeEvent], str]:
        """Change events after the cursor `after`, and the cursor to resume from."""
        self._engine.check_open()
        return self.feed.since(after, collection, limit)

    @locked
    def current_cursor(self) -> str:
        """The change-feed cursor of now: `changes(after=db.current_cursor())` later returns
        exactly the changes made after this call (a full rescan plus this cursor is how a
        reader starts from scratch)."""
        self._engine.check_open()
        return self.feed.cursor_for(self.feed.last_seq)

    @locked
    def subscribe(self, callback: Callable[[ChangeEvent], None] | None = None, *,
                  collection: str | None = None, buffer: int = SUBSCRIBER_BUFFER) -> Subscription:
        self._engine.check_open()
        return self.feed.subscribe(collection, buffer, callback)
