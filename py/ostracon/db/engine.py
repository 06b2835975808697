"""The engine of one open database: the parts every collection shares (replica, write sink,
change feed, indexing, schemas) and the write path that ties them together.

`Database` is the public facade over it and `Collection` the document API; both use only
the engine's public members (a layering test says so).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..core import cid as cidlib
from ..core.block import OP_TEXT
from ..core.errors import ClosedError, NotFoundError, ReadOnlyError, ValidationError
from ..core.feed import ChangeFeed
from ..core.replica import MAX_SEAL_BLOCKS, Replica
from ..core.state import DocState
from ..storage.base import Storage
from .batch import MAX_BATCH_OPS, BatchLog
from .driver import RETRY_MS, SWEEP_MS
from .indexing import INDEX_WAIT_MS, Indexing
from .schemas import SCHEMA_COLLECTION, SchemaCatalog
from .sink import WriteSink
from .text import TextBursts

#: Subscriber callback exceptions kept for inspection (the newest ones).
CALLBACK_ERRORS_KEPT = 20
#: Binary CID -> text cache for `_heads` of views (base32 formatting is ~10 µs per CID in
#: CPython 3.11, more than the rest of a view): ~140 bytes per entry, cleared when full.
CID_TEXT_CACHE_MAX = 65_536

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"

def _checked_random(source: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """`source` checked on every call: ids and feed ids need exactly the bytes asked for (a
    provider returning b"" would make every id's random part the same)."""
    def random_bytes(n: int) -> bytes:
        out = source(n)
        if type(out) is not bytes or len(out) != n:
            size = f" of length {len(out)}" if isinstance(out, bytes | bytearray) else ""
            raise ValidationError(f"random_bytes({n}) must return {n} bytes, got {type(out).__name__}{size}")
        return out
    return random_bytes


class Engine:
    """Shared state and the write path of one open database (see the module docstring)."""

    def __init__(self, storage: Storage, replica: Replica, sink: WriteSink, indexing: Indexing,
                 schemas: SchemaCatalog, *, clock: Callable[[], int],
                 random_bytes: Callable[[int], bytes], fallback_docs_max: int) -> None:
        self.storage = storage
        self.replica = replica
        self.sink = sink
        self.indexing = indexing
        self.schemas = schemas
        self.clock = clock
        self.random_bytes = _checked_random(random_bytes)
        self.fallback_docs_max = fallback_docs_max
        self.feed: ChangeFeed | None = None   # set once the stored state is loaded
        self.closed = False
        # The last wall-clock reading the database made (writes and tick() read the clock);
        # access times use it so reads never call the clock (scripted clocks stay exact).
        self.now = 0
        self.listeners: list[Callable[[str, str, DocState], None]] = []
        self.callback_errors: list[Exception] = []
        self._cid_text: dict[bytes, str] = {}
        self.texts = TextBursts(self)   # open text editing bursts (db/text.py)
        self.batch: BatchLog | None = None   # the atomic batch being written (db/batch.py)
        # Threads: one re-entrant lock guards every in-memory structure; `changed` is
        # notified when index builds progress (queries waiting for an index wake on it).
        self.lock = sink.lock
        self.changed = threading.Condition(self.lock)
        self.local = threading.local()   # per thread: depth of locked calls
        self.flush_wanted = False         # a write asked for a flush on its own thread
        self.kick: Callable[[], None] | None = None   # wakes the driver (None: no driver)
        # Without a driver, who flushes a full batch: the write that filled it (True) or the
        # next tick (False: Database `sink_size_trigger="tick"`, the browser worker).
        self.size_flush_on_write = True
        self.release_held: Callable[[], None] = lambda: None   # merge blocks held for skew
        self.index_wait_ms = INDEX_WAIT_MS
        self.retry_after_ms = 0           # no background flush before (after a failure)
        self.next_sweep_ms = 0

    @property
    def driven(self) -> bool:
        """Whether a background driver runs (natively; not in Pyodide, not with an
        injected clock)."""
        return self.kick is not None

    def depth(self) -> int:
        """Locked calls the current thread is inside."""
        return getattr(self.local, "depth", 0)

    def after_unlock(self) -> None:
        """Flush asked for by a write of this thread (no driver, or backpressure)."""
        self.flush_wanted = False
        if not self.sink.flush_background():
            self.retry_after_ms = self.now + RETRY_MS

    def wait_changed(self, deadline: float) -> bool:
        """Wait (state lock held once by this thread) until index builds progress or the
        monotonic `deadline` passes; False when it passed."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.changed.wait(left)
        return True

    # ------------------------------------------------------------ checks

    def check_open(self) -> None:
        if self.closed:
            raise ClosedError("the database is closed")

    def check_writable(self) -> None:
        self.check_open()
        if self.storage.read_only:
            raise ReadOnlyError("the database was opened read-only")

    # ------------------------------------------------------------ write path

    def new_id(self) -> str:
        """Time-sortable id: the 64-bit clock stamp then 64 random bits, base32 (26 chars)."""
        stamp = self.replica.clock.now(self.clock())
        n = (stamp << 64) | int.from_bytes(self.random_bytes(8), "big")
        return "".join(_CROCKFORD[(n >> s) & 31] for s in range(125, -1, -5))

    def write(self, collection: str, doc_id: str, ops: list, schema: bytes | None = None) -> bytes:
        """Commit validated ops as one block, publish the change, queue it; returns the CID.
        The block carries the commit metadata of the thread's innermost `provenance` scope
        and is signed by the identity of its innermost `as_identity` scope (db/provenance.py).
        Flushes when the sink's rule says so (a failure is kept for the next flush)."""
        now = self.clock()
        self.now = now
        meta = getattr(self.local, "meta", None)
        actor = getattr(self.local, "actor", None)
        if actor is not None and any(op[0] == OP_TEXT for op in ops):
            # Text element ids are minted for the database's own actor (db/text.py).
            raise ValidationError("collaborative text edits are made by the database's own identity, "
                                  "not inside db.as_identity()")
        if self.replica.wide_fan(collection, doc_id):   # more heads than one block may merge
            if self.batch is None:
                # The merge changes and the write are one unit: a refused write leaves none.
                with self.atomic(MAX_BATCH_OPS):
                    return self.write(collection, doc_id, ops, schema)
            while self.replica.wide_fan(collection, doc_id):
                self._commit(collection, doc_id, [], now, schema, meta, actor, merge=True)
        return self._commit(collection, doc_id, ops, now, schema, meta, actor)

    def _commit(self, collection: str, doc_id: str, ops: list, now: int, schema: bytes | None,
                meta: dict | None, actor: bytes | None, *, merge: bool = False) -> bytes:
        batch = self.batch
        if batch is not None:
            batch.before_write(collection, doc_id, ops, self.replica.actor if actor is None else actor)
        cid, data, state = self.replica.commit(collection, doc_id, ops, now, schema, meta, actor, merge=merge)
        if batch is not None:
            # Indexes now (later writes of the batch check unique keys against them); the
            # block and the event wait for the batch's commit (db/batch.py).
            self.indexing.maintain(collection, doc_id, state, now)
            batch.written(collection, doc_id, data, state, now)
            return cid
        self.sink.add_local(data, now)
        self.publish(collection, doc_id, state)
        self.sink_triggers(now)
        return cid

    @contextlib.contextmanager
    def atomic(self, size: int) -> Iterator[None]:
        """Run the writes made inside as one atomic batch of at most `size` writes
        (db/batch.py): all of them are applied, queued and announced together, or an
        exception inside undoes every one and propagates. The caller holds the state lock
        for the whole block. Raises ValidationError for a nested batch or `size` beyond
        MAX_BATCH_OPS, ClosedError / ReadOnlyError as writes do."""
        if self.batch is not None:
            raise ValidationError("atomic batches do not nest")
        if size > MAX_BATCH_OPS:
            raise ValidationError(f"a batch holds at most {MAX_BATCH_OPS} writes, not {size}")
        self.check_writable()
        r = self.replica
        actor = getattr(self.local, "actor", None) or r.actor
        if r.seq_of(actor) - r.sealed_upto.get(actor, 0) + size > MAX_SEAL_BLOCKS:
            self.sink.seal_queued()   # the batch starts a fresh seal range: one seal covers it
        log = self.batch = BatchLog(self)
        try:
            yield
        except BaseException:
            self.batch = None
            log.rollback()
            raise
        self.batch = None
        events = log.commit()
        for collection, doc_id, state, event in events:
            self.announce(collection, doc_id, state, event)
        if events:
            self.sink_triggers(log.now)

    def sink_triggers(self, now: int) -> None:
        """After changes were queued: with a driver, wake it when the batch is full or the
        time trigger needs arming, and flush here only under backpressure; without one,
        flush here when the sink's rule says so (`size_flush_on_write` False: only the time
        trigger and backpressure, the next tick takes full batches as the driver would). The
        flush itself runs after the lock is released (`locked`)."""
        sink = self.sink
        kick = self.kick
        if kick is None:
            if self.size_flush_on_write:
                wanted = sink.due(now)
            else:   # a refused time trigger waits for the retry pause, as in a tick
                wanted = sink.overloaded() or (sink.stale(now) and now >= self.retry_after_ms)
            if wanted:
                self.flush_wanted = True
            return
        full = sink.changes >= sink.batch_ops
        if not sink.armed or (full and not sink.full_signalled):
            sink.armed = True
            sink.full_signalled = full
            kick()
        if sink.overloaded():
            self.flush_wanted = True

    def publish(self, collection: str, doc_id: str, state: DocState,
                check: Callable[[DocState], tuple] | None = None) -> None:
        """A visible change (local or merged) → indexes, change feed, listeners. `check`
        (for merged changes) returns the rules the document now breaks, for the event."""
        # Indexes first: a subscriber that queries from its callback sees the change, and
        # `check` compares unique keys against the maintained index.
        self.indexing.maintain(collection, doc_id, state, self.now)
        self.announce(collection, doc_id, state, None, check)

    def announce(self, collection: str, doc_id: str, state: DocState, event: tuple | None,
                 check: Callable[[DocState], tuple] | None = None) -> None:
        """A change → change feed and listeners. `event`: (version, deleted, created ms,
        updated ms, fields) as of the change, when the state has moved on since (a batch
        announces its writes after all of them are applied); None: the state as it is."""
        # The change is applied already: a failing subscriber callback must not make the
        # write look failed. Errors are kept (bounded) in `callback_errors` for the app.
        try:
            if self.feed is not None and collection != SCHEMA_COLLECTION:
                violations = check(state) if check is not None and not state.deleted else ()
                version, deleted, created, updated, fields = event if event is not None else (
                    state.version, state.deleted, state.min_t >> 16, state.max_t >> 16,
                    state.user_fields())
                self.feed.publish(collection, doc_id, version, deleted, created, updated, fields,
                                  violations)
        except Exception as exc:  # noqa: BLE001 - user code
            self.callback_error(exc)
        for fn in self.listeners:
            fn(collection, doc_id, state)

    # ------------------------------------------------------------ background work

    def background_step(self, now: int) -> list[Any]:
        """One step of background work at wall time `now` (ms): the sink's time and size
        triggers (the flush runs outside the state lock), index rebuilds under their
        throttle, tier sweeps (auto_tier). Returns the rebuild events. Raises ClosedError."""
        with self.lock:
            self.check_open()
            self.now = now
            self.texts.commit_due(now)
            due = self.sink.due(now) and now >= self.retry_after_ms
        if due and not self.sink.flush_background():
            self.retry_after_ms = now + RETRY_MS
        self.release_held()
        with self.lock:
            if self.closed:
                return []
            for entry in self.indexing.take_reopened():
                self.indexing.wake(entry, now)
            events = self.indexing.step(now)
            if self.indexing.auto_tier and now >= self.next_sweep_ms:
                self.next_sweep_ms = now + SWEEP_MS
                self.indexing.sweep(now)
            if events:
                self.changed.notify_all()
        return events

    def drive_once(self) -> float | None:
        """The driver's loop body: one background step, then the seconds until the next
        one is due (None: nothing pending; sleep until woken)."""
        try:
            self.background_step(self.clock())
        except ClosedError:
            return None
        with self.lock:
            now = self.clock()
            sink = self.sink
            wake = []
            deadline = sink.deadline_ms()
            sink.armed = deadline is not None
            if deadline is not None:
                wake.append(max(deadline, self.retry_after_ms))
            if sink.changes >= sink.batch_ops:
                sink.full_signalled = True
                wake.append(max(now, self.retry_after_ms))
            rebuild = self.indexing.next_wakeup_ms(now)
            if rebuild is not None:
                wake.append(rebuild)
            if self.indexing.auto_tier:
                wake.append(self.next_sweep_ms)
            if self.replica.held_count:
                wake.append(now + SWEEP_MS)   # held blocks are released as time passes
            burst = self.texts.next_due_ms()
            if burst is not None:
                wake.append(burst)
        if not wake:
            return None
        return max(0.0, (min(wake) - now) / 1000)

    def callback_error(self, exc: Exception) -> None:
        self.callback_errors.append(exc)
        del self.callback_errors[:-CALLBACK_ERRORS_KEPT]

    # ------------------------------------------------------------ reading helpers

    def heads_text(self, heads: Iterable[bytes]) -> list[str]:
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

    def state_at(self, state: DocState, at: Any) -> DocState:
        """The document as it was at commit `at` (a CID, or a list of head CIDs)."""
        if not isinstance(at, (str, bytes, list, tuple)):
            raise ValidationError(f"`at` takes a CID string or a list of them, not {type(at).__name__}")
        given: list[Any] = [at] if isinstance(at, (str, bytes)) else list(at)
        if not given:
            raise ValidationError("`at` needs at least one CID")
        if not all(type(h) is str for h in given):
            raise ValidationError("`at` takes a CID string or a list of them")
        heads: list[str] = given
        r = self.replica
        wanted: set[bytes] = set()
        stack = []
        for h in heads:
            raw = cidlib.parse_cid(h)
            info = r.info.get(raw)
            if info is None or info.collection != state.collection or info.doc_id != state.doc_id:
                raise NotFoundError(f"{cidlib.format_cid(raw)} is not a commit of {state.collection}/{state.doc_id}")
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
