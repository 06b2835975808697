"""The worker's idle tick: the sink's time trigger, then one piece of background work (the
read view's pending rows, or else compaction), never while a call is waiting. A mixin of
`Host` (host.py): it uses the host's `db`, `storage`, `calls_waiting` (a JS callback from
web/worker.js: are calls queued?) and the RPC batch position `run` keeps.

Why steps: the worker is one thread; while Python works, calls wait. The read view's rows are
written in transactions of `VIEW_STEP_DOCS` documents with a look at the queue between them, so
a call waits for one step at most. Compaction (`db.compact()`) is one step: encoding the
snapshot is most of it; it is only postponed while calls wait.
"""

from __future__ import annotations

from typing import Any

#: Records in the log after the newest snapshot that make the worker write a new snapshot
#: (db.compact) at its next idle tick, when they are also at least half as many as the blocks
#: the snapshot holds (so the work stays proportional to what was written). Opening then
#: loads the snapshot lazily (its documents are built on first use) instead of replaying
#: every record through Python: a reopen of 10,000 documents costs the unpack of a few
#: columns, not 10,000 merges.
COMPACT_LOG_RECORDS = 1000
#: Documents whose read-view rows one idle step writes (one IndexedDB transaction) before
#: the worker looks for waiting calls again: ~0.1-0.3 s of Python at 10 fields a document,
#: so a call that arrives while the view catches up on 10,000 writes waits one step, not all.
VIEW_STEP_DOCS = 500
#: Idle ticks during which writes keep coming that the view may lag before it is caught up
#: anyway (normally it is caught up at the first idle tick after writes pause).
VIEW_MAX_LAG_TICKS = 10

__all__ = ["COMPACT_LOG_RECORDS", "VIEW_MAX_LAG_TICKS", "VIEW_STEP_DOCS", "IdleWork"]


class IdleWork:
    """`rpc_tick` and the background work it runs (see the module docstring)."""

    db: Any
    storage: Any
    calls_waiting: Any
    _later_in_batch: int
    _seen_seq: int
    _view_lag_ticks: int
    _compact_tried: int

    def rpc_tick(self) -> None:
        """The worker's idle tick: the sink's time trigger, then (when no call waits) one
        piece of background work: the read view's rows, or else compaction."""
        if self.db is None:
            return
        self.db.tick()
        if self._waiting():
            return  # postponed: calls first
        if not self.catch_up_view():
            self.maybe_compact()

    def _waiting(self) -> bool:
        """Are calls waiting: later in this RPC batch, or queued in the worker meanwhile?"""
        return self._later_in_batch > 0 or (self.calls_waiting is not None and bool(self.calls_waiting()))

    def catch_up_view(self) -> bool:
        """Write the read view's pending rows once writes have paused for an idle tick (or
        after `VIEW_MAX_LAG_TICKS` ticks of steady writes), `VIEW_STEP_DOCS` documents per
        transaction, stopping early when calls wait. True if it wrote anything."""
        db, storage = self.db, self.storage
        seq = db.feed.last_seq
        quiet, self._seen_seq = seq == self._seen_seq, seq
        lagging = getattr(storage, "view_lagging", None)
        if lagging is None or not lagging():
            self._view_lag_ticks = 0
            return False
        self._view_lag_ticks += 1
        if not quiet and self._view_lag_ticks <= VIEW_MAX_LAG_TICKS:
            return False
        if db.pending_writes:  # the sink's batch carries the first step
            storage.request_view(VIEW_STEP_DOCS)
            db.flush()
        backlog = storage.view_backlog()
        while storage.view_lagging() and not self._waiting():
            storage.write_view(VIEW_STEP_DOCS)
            left = storage.view_backlog()
            if left >= backlog:
                break  # no progress (a head still queued): the next tick retries
            backlog = left
        if not storage.view_lagging():
            self._view_lag_ticks = 0
        return True

    def maybe_compact(self) -> bool:
        """Write a snapshot when the log since the last one is long (`COMPACT_LOG_RECORDS`)
        and nothing waits to be flushed; tried once per such stretch of log (compaction
        declines when the snapshot would not make the store smaller). True if it ran."""
        db, storage = self.db, self.storage
        if db is None or db.pending_writes or storage is None:
            return False
        log = storage.open_report().records
        last = storage.last_position()
        if log < max(COMPACT_LOG_RECORDS, (len(db.replica.order) - log) // 2) \
                or last - self._compact_tried < COMPACT_LOG_RECORDS:
            return False
        self._compact_tried = last
        db.compact()
        return True

