"""The write sink: persists what the replica gained, in batches.

Local writes and merged remote blocks are queued as envelopes. A flush seals the new local
blocks (one signature per `MAX_SEAL_BLOCKS` range), appends the queue with those seals to
storage and makes storage durable; only then are our new blocks offered to other replicas
(`Replica.own_durable`). One rule decides when a flush is due (`due`): `batch_ops` queued
changes, or `interval_ms` since the oldest change not yet durable.

Threads: the queue and the replica are guarded by the database's state lock (`lock`);
storage I/O by `io_lock`. A flush holds the state lock only to seal and take the batch,
never during append or fsync, so readers and writers never wait for the disk. Flushes run
one at a time (io_lock), so batches reach storage in queue order.

Errors: a failed flush that ran in the background (the driver, a size trigger) keeps its
batch queued when storage did not take it (and still counts its changes when storage took
them but did not make them durable, so the time trigger retries), and is recorded in `error`
and reported to `on_error`; the next flush retries and raises if the data is still not
durable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..core.block import KIND_BLOCK, KIND_SEAL, envelope
from ..core.errors import StorageError, ValidationError
from ..core.replica import Replica
from ..storage.base import Storage

#: Size trigger: one signature and one storage transaction per 100 writes
#: keeps both costs well under the cost of the writes.
SINK_BATCH_OPS = 100
#: Time trigger: at most this long between a write and its persistence when writes trickle.
SINK_INTERVAL_MS = 5000
#: Backpressure: changes queued beyond this while a background flush lags make the writer
#: flush itself (bounds the memory a burst of writes can hold unpersisted: ~100 batches).
SINK_MAX_QUEUED = 10_000

MetaSource = Callable[[], "list[tuple[str, bytes]]"]


class IoLock:
    """The sink's storage I/O lock (`with` it like a `threading.Lock`), whose wait is bounded.

    wait_ms None: wait as long as the flush ahead takes (threads natively: a slow disk is
    no reason to fail a write). A bound raises StorageError instead of waiting past it. The
    browser host uses 0: the worker has one thread, so a wait for a lock held by a stack
    suspended in an IndexedDB call could never end and would freeze the worker; the bridge's
    gate keeps that from happening, and this turns any way around it into an error."""

    __slots__ = ("_lock", "wait_ms")

    def __init__(self, wait_ms: int | None = None) -> None:
        self._lock = threading.Lock()
        self.wait_ms = wait_ms

    def __enter__(self) -> IoLock:
        if not self._lock.acquire(timeout=-1 if self.wait_ms is None else self.wait_ms / 1000):
            raise StorageError(f"storage is busy with another flush (waited {self.wait_ms} ms for it)")
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class WriteSink:
    """Batching, sealing and the flush triggers of one database's writes."""

    def __init__(self, storage: Storage, replica: Replica, sign: Callable[[bytes], bytes],
                 lock: threading.RLock, *, batch_ops: int = SINK_BATCH_OPS,
                 interval_ms: int = SINK_INTERVAL_MS, max_queued: int = SINK_MAX_QUEUED,
                 on_batch: Callable[[list[bytes], int], None] | None = None,
                 io_wait_ms: int | None = None) -> None:
        for name, v, low in (("sink_batch_ops", batch_ops, 1), ("sink_interval_ms", interval_ms, 0),
                             ("sink_max_queued", max_queued, 1)):
            if type(v) is not int or v < low:
                raise ValidationError(f"{name} must be an int >= {low}")
        self.storage = storage
        self.replica = replica
        self.sign = sign
        self.lock = lock
        self.io_lock = IoLock(io_wait_ms)
        self.batch_ops = batch_ops
        self.interval_ms = interval_ms
        self.max_queued = max_queued
        # Called with each batch and the highest own sequence number in it, after it is
        # appended and before the flush that makes it durable, one flush at a time
        # (open-time verification bookkeeping: verification.record_flush).
        self.on_batch = on_batch
        self.queue: list[bytes] = []       # envelopes not yet appended to storage
        self.changes = 0                   # blocks queued since the last durable flush
        self.oldest_ms: int | None = None  # when the oldest of them was queued
        self.queued_total = 0              # blocks ever queued (local and merged)
        self.durable_total = 0             # of those, how many are durable
        self.flushes = 0                   # successful flushes
        self.error: StorageError | None = None   # of the last background flush, if it failed
        self.errors = 0                    # background flush failures so far
        self.on_error: Callable[[StorageError], None] | None = None
        self.meta_source: MetaSource = list   # storage meta to write with the next batch
        self.retry_meta: list[tuple[str, bytes]] = []   # meta of a batch storage refused
        self.armed = False          # the driver knows about the queued changes
        self.full_signalled = False  # the driver was told the batch is full
        # Everything in storage at open is durable.
        replica.own_durable = replica.seq_of(replica.actor)
        # Signers of stage identities (db/provenance.py `identity`): actor -> sign.
        self.stage_signers: dict[bytes, Callable[[bytes], bytes]] = {}
        self.staged_upto: dict[bytes, int] = {}   # their seqs in the batch being written

    # ------------------------------------------------------------ queueing (state lock held)

    def add_local(self, block: bytes, now_ms: int) -> None:
        """A local write's block bytes (already applied to the replica)."""
        self.queue.append(envelope(KIND_BLOCK, block))
        self._count(1, now_ms)

    def add_merged(self, blocks: list[bytes], seals: list[bytes], now_ms: int) -> None:
        """Blocks and seals a merge added to the replica, in apply order."""
        q = self.queue
        q.extend(envelope(KIND_BLOCK, b) for b in blocks)
        q.extend(envelope(KIND_SEAL, s) for s in seals)
        if blocks or seals:
            self._count(len(blocks), now_ms)

    def seal_queued(self) -> None:
        """Seal the queued local blocks now, so the next ones start a fresh seal range (an
        atomic batch must fit under one seal, db/batch.py). The seals follow their blocks
        in the queue."""
        seals = self.replica.seal_local(self.sign, self.stage_signers)
        self.queue.extend(envelope(KIND_SEAL, s) for s in seals)

    def _count(self, n: int, now_ms: int) -> None:
        self.changes += n
        self.queued_total += n
        if self.oldest_ms is None:
            self.oldest_ms = now_ms

    # ------------------------------------------------------------ the flush rule

    def has_work(self) -> bool:
        # changes without a queue: a batch storage took but did not make durable (`_write`).
        return bool(self.queue) or self.changes > 0 or self.replica.unsealed_count() > 0

    def due(self, now_ms: int) -> bool:
        """The one flush rule: a full batch, or the oldest queued change is `interval_ms` old."""
        if not self.has_work():
            return False
        if self.changes >= self.batch_ops:
            return True
        return self.stale(now_ms)

    def stale(self, now_ms: int) -> bool:
        """The time trigger alone: the oldest queued change is `interval_ms` old."""
        return self.oldest_ms is not None and now_ms - self.oldest_ms >= self.interval_ms

    def deadline_ms(self) -> int | None:
        """When the time trigger fires for what is queued now (None: nothing queued)."""
        if not self.has_work() or self.oldest_ms is None:
            return None
        return self.oldest_ms + self.interval_ms

    def overloaded(self) -> bool:
        return self.changes >= self.max_queued

    # ------------------------------------------------------------ flushing (any thread)

    def flush(self) -> None:
        """Seal, append and make durable everything queued before the call; raises
        StorageError when that fails (a batch storage refused stays queued)."""
        with self.io_lock:
            with self.lock:
                taken = self._take()
            self._write(taken)
            with self.lock:
                self._done(taken)

    def flush_holding_locks(self) -> None:
        """`flush` for a caller that holds both io_lock and the state lock (compaction)."""
        taken = self._take()
        self._write(taken)
        self._done(taken)

    def _take(self) -> tuple[list[bytes], int, int | None, int, int, list[tuple[str, bytes]]]:
        seals = self.replica.seal_local(self.sign, self.stage_signers)
        self.staged_upto = {a: self.replica.seq_of(a) for a in self.replica.stage_actors}
        self.queue.extend(envelope(KIND_SEAL, s) for s in seals)
        batch, self.queue = self.queue, []
        meta, self.retry_meta = self.retry_meta + self.meta_source(), []
        taken = (batch, self.changes, self.oldest_ms, self.replica.seq_of(self.replica.actor),
                 self.queued_total, meta)
        self.changes, self.oldest_ms = 0, None
        self.armed = self.full_signalled = False
        return taken

    def _write(self, taken: tuple[list[bytes], int, int | None, int, int, list[tuple[str, bytes]]]) -> None:
        batch, changes, oldest, upto_seq, _, meta = taken
        try:
            for key, value in meta:
                self.storage.set_meta(key, value)
            if batch:
                self.storage.append(batch)
        except StorageError:
            with self.lock:   # storage did not take the batch: keep it, in order
                self.retry_meta = meta + self.retry_meta
                self.queue[:0] = batch
                self._recount(changes, oldest)
            raise
        if batch and self.on_batch is not None:
            self.on_batch(batch, upto_seq)
        # Raises on failure; then our new blocks stay unshareable (own_durable unchanged):
        # only blocks that survived a flush are ever offered to other replicas.
        try:
            self.storage.flush()
        except StorageError:
            with self.lock:   # storage holds the batch but not durably: still to be flushed
                self._recount(changes, oldest)
            raise

    def _recount(self, changes: int, oldest: int | None) -> None:
        """Count again the changes of a batch a flush did not make durable (state lock held),
        so the flush rule (`due`, the time trigger) retries it."""
        self.changes += changes
        if oldest is not None and (self.oldest_ms is None or oldest < self.oldest_ms):
            self.oldest_ms = oldest

    def _done(self, taken: tuple[list[bytes], int, int | None, int, int, list[tuple[str, bytes]]]) -> None:
        upto_seq, upto_total = taken[3], taken[4]
        self.replica.own_durable = max(self.replica.own_durable or 0, upto_seq)
        staged = self.replica.stage_actors
        for a, n in self.staged_upto.items():
            staged[a] = max(staged.get(a, 0), n)
        self.durable_total = max(self.durable_total, upto_total)
        self.flushes += 1
        self.error = None

    def flush_background(self) -> bool:
        """A flush nobody waits for (driver, size trigger): a failure is recorded in `error`,
        counted and passed to `on_error`, never raised. Returns whether it succeeded."""
        try:
            self.flush()
        except StorageError as exc:
            with self.lock:
                self.error = exc
                self.errors += 1
            cb = self.on_error
            if cb is not None:
                try:
                    cb(exc)
                except Exception:  # noqa: BLE001 - user code must not stop the sink
                    pass
            return False
        return True

    def status(self) -> dict:
        """queued (blocks not yet durable), durable_total, flushes, errors, last_error."""
        with self.lock:
            return {"queued": self.changes, "queued_total": self.queued_total,
                    "durable_total": self.durable_total, "flushes": self.flushes,
                    "errors": self.errors, "last_error": self.error}
