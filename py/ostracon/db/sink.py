"""The write sink: persists what the replica gained, in batches.

Local writes and merged remote blocks are queued as envelopes. A flush seals the new local
blocks (one signature per `MAX_SEAL_BLOCKS` range), appends the queue with those seals to
storage and makes storage durable; only then are our new blocks offered to other replicas
(`Replica.own_durable`). One rule decides when a flush is due (`due`): `batch_ops` queued
changes, or `interval_ms` since the oldest change not yet durable. A failed automatic
flush keeps its batch queued and records the error in `error`; the next flush retries it.
"""

from __future__ import annotations

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


class WriteSink:
    """Batching, sealing and the flush triggers of one database's writes."""

    def __init__(self, storage: Storage, replica: Replica, sign: Callable[[bytes], bytes], *,
                 batch_ops: int = SINK_BATCH_OPS, interval_ms: int = SINK_INTERVAL_MS,
                 on_batch: Callable[[list[bytes]], None] | None = None) -> None:
        if type(batch_ops) is not int or batch_ops < 1:
            raise ValidationError("sink_batch_ops must be an int >= 1")
        if type(interval_ms) is not int or interval_ms < 0:
            raise ValidationError("sink_interval_ms must be an int >= 0")
        self.storage = storage
        self.replica = replica
        self.sign = sign
        self.batch_ops = batch_ops
        self.interval_ms = interval_ms
        # Called with each batch after it is appended and before the flush that makes it
        # durable (open-time verification bookkeeping: verification.record_flush).
        self.on_batch = on_batch
        self.queue: list[bytes] = []       # envelopes not yet appended to storage
        self.changes = 0                   # blocks queued since the last durable flush
        self.oldest_ms: int | None = None  # when the oldest of them was queued
        self.error: StorageError | None = None  # of the last automatic flush, if it failed
        # Everything in storage at open is durable.
        replica.own_durable = replica.seq_of(replica.actor)

    # ------------------------------------------------------------ queueing

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

    def _count(self, n: int, now_ms: int) -> None:
        self.changes += n
        if self.oldest_ms is None:
            self.oldest_ms = now_ms

    # ------------------------------------------------------------ the flush rule

    def has_work(self) -> bool:
        return bool(self.queue) or self.replica.unsealed_count() > 0

    def due(self, now_ms: int) -> bool:
        """The one flush rule: a full batch, or the oldest queued change is `interval_ms` old."""
        if not self.has_work():
            return False
        if self.changes >= self.batch_ops:
            return True
        return self.oldest_ms is not None and now_ms - self.oldest_ms >= self.interval_ms

    def flush(self) -> None:
        """Seal, append and make durable everything queued; raises StorageError (the batch
        stays queued, our new blocks stay unshareable)."""
        r = self.replica
        seals = r.seal_local(self.sign)
        self.queue.extend(envelope(KIND_SEAL, s) for s in seals)
        if self.queue:
            batch = self.queue
            self.storage.append(batch)
            self.queue = []
            if self.on_batch is not None:
                self.on_batch(batch)
        self.storage.flush()
        r.own_durable = r.seq_of(r.actor)
        self.changes = 0
        self.oldest_ms = None
        self.error = None

    def flush_if_due(self, now_ms: int) -> bool:
        """Flush when `due`; a failure is kept in `error` (reported by the next flush).
        Returns whether a flush was attempted."""
        if not self.due(now_ms):
            return False
        try:
            self.flush()
        except StorageError as exc:
            self.error = exc
        return True
