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

import dataclasses
import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..core import cid as cidlib
from ..core import snapshot
from ..core.block import check_collection
from ..core.errors import OstraconError, ValidationError
from ..core.feed import FEED_RETENTION, SUBSCRIBER_BUFFER, ChangeEvent, ChangeFeed, Subscription
from ..core.query.planner import FALLBACK_DOCS_MAX
from ..core.query.rebuild import BATCH_SIZE, COLD_AFTER_MS, MAX_CONCURRENT, RATE_DOCS_PER_S, WARM_AFTER_MS, RebuildEvent
from ..core.query.schema import SchemaRegistry
from ..core.replica import MAX_PENDING_BLOCKS, ApplyResult, Replica
from ..core.clock import DEFAULT_MAX_CLOCK_SKEW_MS
from ..core.verify import verify_replica
from ..storage.base import OpenReport, Storage
from .collection import Collection
from .engine import Engine
from .indexing import INDEX_SYNC_BUILD_DOCS, IndexedCollection, Indexing
from . import verification
from .schemas import SchemaCatalog
from .sink import SINK_BATCH_OPS, SINK_INTERVAL_MS, WriteSink


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _parse_actor(a: Any) -> bytes:
    if type(a) is bytes and len(a) == 32:
        return a
    if type(a) is str and len(a) == 64:
        try:
            return bytes.fromhex(a)
        except ValueError:
            pass
    raise ValidationError(f"actor must be 32 bytes or 64 hex chars: {a!r:.80}")


class Database:
    """An open Ostracon database. Use `ostracon.open(...)`."""

    def __init__(self, storage: Storage, *, identity: Any, crypto: Any,
                 clock: Callable[[], int] | None = None, random_bytes: Callable[[int], bytes] | None = None,
                 require_signatures: bool = True, sink_batch_ops: int = SINK_BATCH_OPS,
                 sink_interval_ms: int = SINK_INTERVAL_MS, feed_retention: int = FEED_RETENTION,
                 max_pending_blocks: int = MAX_PENDING_BLOCKS,
                 max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS,
                 repair: bool = False, on_corrupt: str = "raise",
                 fallback_docs_max: int = FALLBACK_DOCS_MAX,
                 index_sync_build_docs: int = INDEX_SYNC_BUILD_DOCS,
                 rebuild_batch_size: int = BATCH_SIZE, rebuild_rate_docs_per_s: int = RATE_DOCS_PER_S,
                 rebuild_max_concurrent: int = MAX_CONCURRENT, auto_tier: bool = False,
                 warm_after_ms: int = WARM_AFTER_MS, cold_after_ms: int = COLD_AFTER_MS) -> None:
        if type(fallback_docs_max) is not int or fallback_docs_max < 0:
            raise ValidationError("fallback_docs_max must be an int >= 0")
        self.storage = storage
        self.identity = identity
        self.crypto = crypto
        self.clock = clock or _wall_ms
        indexing = Indexing(index_sync_build_docs=index_sync_build_docs,
                            rebuild_batch_size=rebuild_batch_size,
                            rebuild_rate_docs_per_s=rebuild_rate_docs_per_s,
                            rebuild_max_concurrent=rebuild_max_concurrent, auto_tier=auto_tier,
                            warm_after_ms=warm_after_ms, cold_after_ms=cold_after_ms,
                            on_error=self._callback_error, on_meta_change=self._save_meta)
        loaded = verification.load(
            lambda: Replica(identity.actor, require_signatures=require_signatures,
                            verify=crypto.ed25519_verify, max_pending_blocks=max_pending_blocks,
                            max_clock_skew_ms=max_clock_skew_ms),
            storage, crypto.ed25519_verify, self.clock(), repair=repair, on_corrupt=on_corrupt)
        replica, self._seal_chain = loaded.replica, loaded.chain
        self._open_notes, self._open_problems = loaded.notes, loaded.problems
        sink = WriteSink(storage, replica, identity.sign, batch_ops=sink_batch_ops,
                         interval_ms=sink_interval_ms,
                         on_batch=lambda batch: verification.record_flush(
                             replica, storage, self._seal_chain, identity.sign, batch))
        self._engine = Engine(storage, replica, sink, indexing, SchemaCatalog(replica),
                              clock=self.clock, random_bytes=random_bytes or crypto.random_bytes,
                              fallback_docs_max=fallback_docs_max)
        self._collections: dict[str, Collection] = {}
        self._gql: dict[bool, Any] = {}
        self.last_apply: ApplyResult = ApplyResult()
        self._engine.feed = ChangeFeed(self._engine.random_bytes(6).hex(), feed_retention)
        self._engine.schemas.load(storage)
        indexing.load(storage, self._open_entry)

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
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        e = self._engine
        if e.closed:
            return
        try:
            if not self.storage.read_only:
                if e.indexing.meta_saved:
                    self._save_meta()  # last access times
                self.flush()
        finally:
            e.closed = True
            self.storage.close()

    @property
    def closed(self) -> bool:
        return self._engine.closed

    @property
    def actor(self) -> str:
        return self._engine.replica.actor.hex()

    def open_report(self) -> OpenReport:
        rep = self.storage.open_report()
        if not self._open_notes:
            return rep
        return dataclasses.replace(rep, notes=rep.notes + tuple(self._open_notes))

    def verify(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Re-verify everything: every record in storage, every CID, DAG link, sequence slot,
        seal digest and seal signature (core/verify.py), plus what open found. Returns the
        problems (empty: verified). Raises CorruptLogError for damaged storage framing."""
        self._engine.check_open()
        problems = list(self._open_problems)
        rep = self.open_report()
        if rep.truncated_bytes:
            problems.append(f"log: a damaged or torn tail of {rep.truncated_bytes} bytes was cut off at "
                            f"open ({'; '.join(rep.notes) or 'see open_report'})")
        problems += [f"log: damaged data was quarantined to {q}" for q in rep.quarantined]
        check_storage = getattr(self.storage, "verify", None)
        if check_storage is not None:
            check_storage()  # reads every record of every segment; raises CorruptLogError
        return problems + verify_replica(self._engine.replica, self.crypto.ed25519_verify, progress)

    def collection(self, name: str) -> Collection:
        self._engine.check_open()
        col = self._collections.get(name)
        if col is None:
            check_collection(name)
            col = self._collections[name] = Collection(self, self._engine, name)
        return col

    def _open_entry(self, name: str) -> IndexedCollection:
        self.collection(name)
        return self._engine.indexing.entries[name]

    def collections(self) -> list[str]:
        return sorted(self._engine.replica.collections)

    # ------------------------------------------------------------ sink

    def tick(self) -> list[RebuildEvent]:
        """One step of background work: fires the sink's time trigger, steps index rebuilds
        under their throttle, and (with auto_tier) demotes idle collections. Returns the
        rebuild events of this step."""
        e = self._engine
        e.check_open()
        now = e.clock()
        e.now = now
        if e.replica.held_count and not self.storage.read_only:
            self.apply_blocks([])  # blocks held for clock skew whose time has come
        e.sink.flush_if_due(now)
        events = e.indexing.step(now)
        if e.indexing.auto_tier:
            e.indexing.sweep(now)
        return events

    def flush(self) -> None:
        """Return once every earlier write is durable; raise StorageError if it is not.

        A failed automatic flush left its batch queued; this retries it, so an error is
        raised here exactly when something acknowledged-looking is still not durable."""
        self._engine.check_open()
        if self.storage.read_only:
            return
        self._engine.sink.flush()

    @property
    def pending_writes(self) -> int:
        """Writes not yet acknowledged by storage."""
        return self._engine.sink.changes

    def compact(self, prune_before: int | None = None) -> int:
        """Flush, write a snapshot of every block and seal, and let storage drop the log it
        covers. Returns the snapshot's record position.

        History stays complete unless `prune_before` (wall ms) is given: then the bodies of
        blocks older than it (except current heads) are dropped, keeping a verifiable
        checkpoint (state hash, frontier CIDs, digest of the pruned CIDs). CIDs, DAG links
        and seals stay; history, time travel and sync that need a dropped body raise
        HistoryPrunedError instead of answering short.
        """
        self._engine.check_writable()
        self.flush()
        if prune_before is not None:
            self._engine.replica.prune(prune_before, self.state_hash)
        position = self.storage.last_position()
        self.storage.write_snapshot(snapshot.dump(self._engine.replica), position)
        self.storage.compact(position)
        verification.record_compaction(self._engine.replica, self.storage, self._seal_chain,
                                       self.identity.sign)
        return position

    @property
    def checkpoint(self) -> dict | None:
        """The pruning checkpoint (None if nothing was ever pruned)."""
        return self._engine.replica.checkpoint

    # ------------------------------------------------------------ replication

    def heads(self) -> list[str]:
        self._engine.check_open()
        return [cidlib.format_cid(h) for h in self._engine.replica.heads()]

    def version_vector(self) -> dict[str, int]:
        self._engine.check_open()
        return {a.hex(): n for a, n in self._engine.replica.version_vector().items()}

    def state_hash(self) -> str:
        """sha256 over every document's (collection, id, deleted, fields, heads), sorted."""
        self._engine.check_open()
        h = hashlib.sha256()
        cols = self._engine.replica.collections
        for name in sorted(cols):
            docs = cols[name]
            for doc_id in sorted(docs):
                h.update(docs[doc_id].digest())
        return h.hexdigest()

    def blocks_since(self, vector: dict | None = None) -> list[bytes]:
        """Envelopes (blocks and their seals) that a replica with `vector` lacks."""
        self._engine.check_open()
        vec = {}
        for a, n in (vector or {}).items():
            if type(n) is not int or n < 0:
                raise ValidationError("version vector values must be ints >= 0")
            vec[_parse_actor(a)] = n
        return self._engine.replica.envelopes_since(vec)

    def apply_blocks(self, envelopes: Iterable[bytes], *, strict: bool = True) -> int:
        """Verify and merge envelopes from another replica; returns how many blocks were new.

        strict=True: any malformed envelope → CorruptBlockError and nothing of the batch is
        applied. Details of the last call are in `last_apply`.
        """
        e = self._engine
        e.check_writable()
        r = e.replica
        result = r.apply_envelopes(list(envelopes), strict=strict, wall_ms=e.clock())
        self.last_apply = result
        now = e.clock()
        e.sink.add_merged(r.new_blocks(result.new), result.new_seals, now)
        e.sink.flush_if_due(now)
        seen = set()
        for key in result.changed_docs:
            if key not in seen:
                seen.add(key)
                col = self._collections.get(key[0])
                if col is not None:
                    col.note_id(key[1])
                state = r.doc(*key)
                assert state is not None
                e.publish(key[0], key[1], state)
        return result.new

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
        """For scripts: connect, exchange everything, disconnect; returns the final status."""
        self._engine.check_open()
        from ..sync.native import sync_once_blocking
        return sync_once_blocking(self, relay_url, space, timeout=timeout, **options)

    # ------------------------------------------------------------ indexes, tiers, metadata

    def rebuild_status(self, collection: str | None = None) -> list[dict]:
        """Rebuild jobs (running, pending, recently finished) with their progress."""
        self._engine.check_open()
        return self._engine.indexing.status(collection)

    def _save_meta(self) -> None:
        """Index definitions and tier records → storage meta (durable at the next flush)."""
        if self.storage.read_only or self._engine.closed:
            return
        self._engine.indexing.save(self.storage)

    # ------------------------------------------------------------ schemas

    def define_schema(self, sdl: str) -> dict[str, str]:
        """Register the types of `sdl` (DefraDB-like SDL; see docs/QUERIES.md) as the next
        schema versions of the collections of the same names. Returns {name: version id}
        (the CID of the canonical schema). Unchanged types keep their version. Writes to
        those collections are validated from now on and their blocks carry the version id;
        `@index` fields get indexes. Persisted in storage meta."""
        e = self._engine
        e.check_open()
        out, changed = e.schemas.define(sdl)
        if changed:
            if not self.storage.read_only:
                e.schemas.save(self.storage)
            self._schemas_changed()
        for name, s in out.items():
            col = self.collection(name)
            for field, unique in s.indexes():
                col.create_index(field, unique=unique)
        return {n: s.version_id for n, s in out.items()}

    def _schemas_changed(self) -> None:
        self._gql.clear()
        for col in self._collections.values():
            col.refresh_schema()
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
        self._engine.check_open()
        self._engine.schemas.register_lens(from_version, to_version, fn, reverse=reverse)

    def schema_history(self, name: str) -> list[dict]:
        """Every version of a schema, parents before children."""
        self._engine.check_open()
        return [{"version_id": s.version_id, "parents": list(s.parents), "height": s.height,
                 "sdl": s.to_sdl()} for s in self.schemas.history(name)]

    def schema_versions(self) -> dict[str, str]:
        """{collection: current schema version id}."""
        self._engine.check_open()
        return {n: self.schemas.get(n).version_id for n in self.schemas.names()}

    # ------------------------------------------------------------ GraphQL

    def graphql(self, query: str, variables: dict | None = None, *, allow_mutations: bool = True,
                operation_name: str | None = None) -> dict:
        """Run a GraphQL request against the API generated from the schemas (see
        docs/QUERIES.md): `{"data": ..., "errors": [...]}` as the spec shapes it; errors
        carry messages and paths, never a traceback."""
        self._engine.check_open()
        api = self._gql.get(bool(allow_mutations))
        if api is None:
            from .graphql import DatabaseBackend, GraphQLAPI
            try:
                api = GraphQLAPI(self.schemas, DatabaseBackend(self),
                                 allow_mutations=bool(allow_mutations))
            except OstraconError as e:
                return {"errors": [{"message": f"{type(e).__name__}: {e}"}]}
            self._gql[bool(allow_mutations)] = api
        return api.execute(query, variables, operation_name)

    # ------------------------------------------------------------ change feed

    def changes(self, collection: str | None = None, after: str | None = None,
                limit: int | None = None) -> tuple[list[ChangeEvent], str]:
        """Change events after the cursor `after`, and the cursor to resume from."""
        self._engine.check_open()
        return self.feed.since(after, collection, limit)

    def subscribe(self, callback: Callable[[ChangeEvent], None] | None = None, *,
                  collection: str | None = None, buffer: int = SUBSCRIBER_BUFFER) -> Subscription:
        self._engine.check_open()
        return self.feed.subscribe(collection, buffer, callback)
