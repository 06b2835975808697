"""The worker's idle tick: the sink's time trigger, then one piece of background work (the
read view's pending rows, or else compaction), never while a call is waiting. A mixin of
`Host` (host.py): it uses the host's `db`, `storage`, `calls_waiting` (a JS callback from
web/worker.js: are calls queued?) and the RPC batch position `run` keeps.

Why steps: the worker is one thread; while Python works, calls wait. The read view's rows are
written in transactions of `VIEW_STEP_DOCS` documents with a look at the queue between them, so
a call waits for one step at most. Compaction runs in steps too (`db.compaction()`,
db/compaction.py: a snapshot of a fixed cut, encoded `COMPACT_STEP_DOCS` documents at a time,
then swapped in); between two steps the tick lets the worker's event loop run (`pause`), so
calls that arrived meanwhile are queued and seen, and returns to serve them. The run goes on
at a later tick; writes made meanwhile land in the log after the cut.

Calls first, but not forever: a page that sends calls back to back never leaves the worker
idle, so after an RPC batch `idle_floor` gives the background work one step anyway once
`IDLE_FLOOR_CALLS` calls or `IDLE_FLOOR_MS` ms went by since it last had a turn. Compaction
and the view's catch-up then go on at a bounded cost to the calls, instead of waiting until
the page stops.

Failures are the page's to know, though no call waits for background work: a sink flush
nobody waited for (the size or time trigger), a step of the read view or of compaction, in a
tick or forced by the floor, is counted and kept (`background_status`), handed to the page
(`post_background`: the `background` status event of the JS API) and retried at a later turn.
A failed flush keeps its batch queued (db/sink.py), so nothing is lost meanwhile.

A call that arrives while Python encodes cannot be seen until Python yields: the worker's
message handler runs only when the JS event loop does. Pure Python never yields by itself,
hence the explicit `pause` (a JSPI suspension on a macrotask) between steps.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from ostracon.core.snapshot_encode import STEP_DOCS

#: Records in the log after the newest snapshot that make the worker write a new snapshot
#: (db.compact) at its next idle tick, when they are also at least half as many as the blocks
#: the snapshot holds (so the work stays proportional to what was written). Opening then
#: loads the snapshot lazily (its documents are built on first use) instead of replaying
#: every record through Python: a reopen of 10,000 documents costs the unpack of a few
#: columns, not 10,000 merges.
COMPACT_LOG_RECORDS = 1000
#: Documents' worth of snapshot encoding in one compaction step (core/snapshot_encode.py
#: STEP_DOCS: ~30-100 ms of Python in a loaded worker), the longest a call arriving during
#: compaction waits for the encoding.
COMPACT_STEP_DOCS = STEP_DOCS
#: Documents whose read-view rows one idle step writes (one IndexedDB transaction) before
#: the worker looks for waiting calls again: ~0.1-0.3 s of Python at 10 fields a document,
#: so a call that arrives while the view catches up on 10,000 writes waits one step, not all.
VIEW_STEP_DOCS = 500
#: Idle ticks during which writes keep coming that the view may lag before it is caught up
#: anyway (normally it is caught up at the first idle tick after writes pause).
VIEW_MAX_LAG_TICKS = 10

#: Calls served since background work last had a turn after which one step of it runs even
#: though more calls wait (`idle_floor`). A step costs the calls behind it ~30-300 ms
#: (`COMPACT_STEP_DOCS`, `VIEW_STEP_DOCS`); small calls take ~1-5 ms each in the worker, so
#: one step per 200 calls costs a stream of calls at most about a third of its rate, and
#: compaction of a 10,000-document store finishes within ~20,000 calls rather than never.
IDLE_FLOOR_CALLS = 200
#: Milliseconds since background work last had a turn after which one step of it runs even
#: though calls wait: the floor for slow calls (a query over many documents), where
#: `IDLE_FLOOR_CALLS` would take minutes. 2 s keeps the share of time taken from the calls
#: under ~15% for the longest steps, and twice the worker's idle tick (TICK_MS, 1 s).
IDLE_FLOOR_MS = 2000

__all__ = ["COMPACT_LOG_RECORDS", "COMPACT_STEP_DOCS", "IDLE_FLOOR_CALLS", "IDLE_FLOOR_MS",
           "VIEW_MAX_LAG_TICKS", "VIEW_STEP_DOCS", "IdleWork"]


def _monotonic_ms() -> float:
    return time.monotonic() * 1000.0


class IdleWork:
    """`rpc_tick` and the background work it runs (see the module docstring)."""

    db: Any
    storage: Any
    calls_waiting: Any
    _later_in_batch: int
    _seen_seq: int
    _view_lag_ticks: int
    _compact_tried: int
    #: The compaction under way (db/compaction.py `Compaction`) and the database it belongs to.
    _compact_run: Any = None
    _compact_db: Any = None
    #: Called between two compaction steps to let calls arrive (None: the browser's
    #: macrotask pause under Pyodide, nothing natively; tests inject their own).
    pause: Any = None
    #: The clock of the floor (ms, only differences matter); tests inject a fake one.
    clock_ms: Callable[[], float] = staticmethod(_monotonic_ms)
    #: Calls served since background work last had a turn, and when it had it (None: never).
    _calls_since_turn: int = 0
    _turn_at_ms: float | None = None
    #: True during the one step `idle_floor` forces while calls wait.
    _floor_step: bool = False
    #: A compaction under the half rule finished: the next one may start once the log after
    #: it is `COMPACT_LOG_RECORDS` long, without the half rule (`maybe_compact`).
    _settle: bool = False
    _settle_run: Any = None
    #: Steps the floor forced, and the last error one of them raised (its batch's calls
    #: were answered already; the next turn retries).
    floor_steps: int = 0
    floor_error: Exception | None = None
    #: Failures of background work so far, and the last one: {"where": "flush" | "view" |
    #: "compaction", "error": the error as the JS API reports it (convert.error_info)}.
    background_errors: int = 0
    background_error: dict | None = None

    def background_status(self) -> dict:
        """{"errors": failures of background work since the open, "last": the last one or
        None} (`background_error`)."""
        return {"errors": self.background_errors, "last": self.background_error}

    def background_failed(self, where: str, exc: BaseException) -> None:
        """Record a failure of background work ("flush", "view" or "compaction") and tell the
        page (`post_background`). Never raises: no call is waiting for the work."""
        from .convert import error_info

        self.background_errors += 1
        self.background_error = {"where": where, "error": error_info(exc)}
        try:
            self.post_background(self.background_status())
        except Exception:  # noqa: BLE001 - telling the page must not break the worker
            pass

    def post_background(self, status: dict) -> None:
        """Hand `background_status()` to the page (the host posts it; nothing here)."""

    def _background_step(self) -> None:
        """One piece of background work: the read view's rows, or else compaction. A failure
        is recorded (`background_failed`) and raised."""
        where = "view"
        try:
            if not self.catch_up_view():
                where = "compaction"
                self.maybe_compact()
        except Exception as exc:
            self.background_failed(where, exc)
            raise

    def rpc_tick(self) -> None:
        """The worker's idle tick: the sink's triggers, then (when no call waits) one piece
        of background work: the read view's rows, or else compaction. A failure of that work
        is recorded and posted (`background_failed`), not raised; ClosedError is."""
        if self.db is None:
            return
        self.db.tick()
        if self._waiting():
            return  # postponed: calls first (`idle_floor` bounds how long)
        self._turn_taken()
        try:
            self._background_step()
        except Exception:  # noqa: BLE001 - recorded and posted; a later tick retries
            pass

    def _turn_taken(self) -> None:
        self._calls_since_turn, self._turn_at_ms = 0, self.clock_ms()

    def idle_floor(self, calls: int) -> bool:
        """After an RPC batch of `calls` requests: when `IDLE_FLOOR_CALLS` calls or
        `IDLE_FLOOR_MS` ms went by since background work last had a turn, run one step of it
        (the read view's rows, or else compaction) even though calls wait. True if it did.
        Never raises: an error of the step is kept in `floor_error` (the calls of the batch
        are answered already; the next turn retries)."""
        if self.db is None:
            return False
        self._calls_since_turn += calls
        now = self.clock_ms()
        if self._turn_at_ms is None:
            self._turn_at_ms = now
        if self._calls_since_turn < IDLE_FLOOR_CALLS and now - self._turn_at_ms < IDLE_FLOOR_MS:
            return False
        self._turn_taken()
        self._floor_step = True
        try:
            self._background_step()
            self.floor_error = None
        except Exception as exc:  # noqa: BLE001 - recorded and posted; the calls are done
            self.floor_error = exc
        finally:
            self._floor_step = False
        self.floor_steps += 1
        return True

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
        forced = self._floor_step  # one step even though calls wait
        while storage.view_lagging() and (forced or not self._waiting()):
            forced = False
            storage.write_view(VIEW_STEP_DOCS)
            left = storage.view_backlog()
            if left >= backlog:
                break  # no progress (a head still queued): the next tick retries
            backlog = left
        if not storage.view_lagging():
            self._view_lag_ticks = 0
        return True

    def maybe_compact(self) -> bool:
        """Start a compaction when the log since the last snapshot is long
        (`COMPACT_LOG_RECORDS`) and nothing waits to be flushed (tried once per such stretch
        of log: compaction declines when the snapshot would not make the store smaller), or
        go on with the one under way; run its steps until it is done or calls wait. True if
        a step ran."""
        db, storage = self.db, self.storage
        if db is None or storage is None:
            return False
        run = self._compact_run if self._compact_db is db else None
        if run is None:
            if db.pending_writes and not self._floor_step:  # the floor: never idle, flush now
                return False
            log = storage.open_report().records
            last = storage.last_position()
            # The half rule bounds the rewriting to a multiple of what was written. A
            # compaction in the middle of a run of writes (at a pause between two calls, or
            # started by the floor) leaves the rest of the run to be replayed at every open,
            # up to half the store: once the writes stop, one more compaction takes it. At
            # most one such follows each compaction under the half rule, so the bound on the
            # rewriting only doubles.
            settle = self._settle and not self._floor_step
            least = COMPACT_LOG_RECORDS if settle else max(COMPACT_LOG_RECORDS, (len(db.replica.order) - log) // 2)
            # An old-format snapshot is replayed at every open: rewritten once (db.compaction).
            outdated = db.snapshot_outdated and last != self._compact_tried
            if not outdated and (log < least or last - self._compact_tried < COMPACT_LOG_RECORDS):
                return False
            self._compact_tried = last
            self._settle = False
            run = db.compaction(step_docs=COMPACT_STEP_DOCS)
            self._compact_run, self._compact_db = run, db
            self._settle_run = run if settle else None
        try:
            while not run.step():
                self._pause()
                if self._waiting():
                    return True  # calls first; the run goes on at a later tick
        finally:
            if run.done:
                self._compact_run = self._compact_db = None
                if run.position is not None and run is not self._settle_run:
                    self._settle = True
        if run.done and self._settle and not self._floor_step and not self._waiting():
            self.maybe_compact()  # a tail written during the run, now that no call waits
        return True

    def _pause(self) -> None:
        """Let the worker's event loop run once (queued calls become visible to
        `calls_waiting`)."""
        if self.pause is not None:
            self.pause()
        elif sys.platform == "emscripten":  # pragma: no cover - the browser only
            _macrotask()


def _macrotask() -> None:  # pragma: no cover - the browser only
    """Suspend this Python stack (JSPI, inside the bridge's gate) until a zero-delay timer
    fires: the worker's message events queued before it run meanwhile."""
    from js import Promise, setTimeout
    from pyodide.ffi import can_run_sync, create_once_callable

    from .bridge import run_blocking

    if not can_run_sync():
        return

    def start(resolve: Any, _reject: Any) -> None:
        setTimeout(resolve, 0)

    run_blocking(Promise.new(create_once_callable(start)))
