"""Live observers: a read-only open follows what the writer (another process) flushes.

`ostracon.open(path, read_only=True)` takes no lock and, natively, starts a follower thread
that looks at the store every `follow_interval_ms` (250 ms: a flush shows within about a
second on a loaded machine, while an idle observer costs one directory listing and one
`stat` per look). What it finds goes through the same checks as a remote replica's blocks:
CIDs recomputed, seal signatures verified, digests checked, causal order; a rejected
record raises CorruptBlockError and nothing of it is applied. Applied changes update the
indexes and are published on the change feed like any merge, so `subscribe()` and
`changes()` work on an observer. Storage rules (complete groups only, torn tails waited on,
roll-over and compaction followed): storage/tail.py.

When the records after the last one read were compacted away, the observer loads the
writer's newest snapshot and log into a fresh replica (verified like an open) and merges
what it lacks: a replica only grows, so documents never go backwards.

`refresh()` does one look on the calling thread (the follower's work; with an injected
clock or where threads cannot start, such as Pyodide, the host calls it). Errors of the
follower thread are kept in `follow_status` and retried at the next look; `refresh()`
raises them. A mixin of `Database` (state set in `Database.__init__`).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import ClosedError, CorruptBlockError, OstraconError
from ..core.replica import ApplyResult, Replica
from . import verification

if TYPE_CHECKING:
    from ..storage.base import Storage, Tail
    from .engine import Engine

#: Default pause between two looks at a followed store (see the module docstring).
FOLLOW_INTERVAL_MS = 250
#: Envelopes merged per step: bounds the memory of one decode pass (as replay at open).
FOLLOW_BATCH = verification.REPLAY_BATCH


class Follower:
    """The background thread of an observer: `refresh()` every interval until stopped.
    It holds the database weakly, so an observer nobody references is still collected."""

    def __init__(self, db: ObserverMixin, interval_ms: int, name: str) -> None:
        self._db = weakref.ref(db)
        self._interval = interval_ms / 1000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> bool:
        """Start the thread; False where threads are unavailable (Pyodide)."""
        if sys.platform == "emscripten":
            return False
        try:
            self._thread.start()
        except (RuntimeError, OSError):
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            db = self._db()
            if db is None:
                return
            try:
                db.follow_step()
            except ClosedError:
                return
            del db


class ObserverMixin:
    """Following methods of `Database` (see the module docstring)."""

    _engine: Engine
    storage: Storage
    crypto: Any
    _new_replica: Callable[[], Replica]
    _follow_lock: threading.Lock
    _follow: dict[str, Any]

    if TYPE_CHECKING:   # provided by ReplicationMixin (later in Database's bases)
        def _publish_merged(self, result: ApplyResult) -> None: ...

    @property
    def follow_status(self) -> dict:
        """The observer's following: `following` (a thread looks every `interval_ms`),
        `looks`, `blocks` (applied since open), `resets` (reloads after compaction),
        `position` (last storage record read), `last_error` (None once a look succeeded
        again; a message naming the error class otherwise) and `stopped` (why following
        stopped for good: a record failed verification; None while it goes on)."""
        out = dict(self._follow)   # a copy, without waiting for a look in progress
        out["position"] = self.storage.last_position()
        return out

    def refresh(self) -> int:
        """Read what the writer flushed since the last look, verify it and apply it
        (publishing change events); returns the number of blocks applied. Raises
        CorruptLogError for damaged storage (raised again at every look until the damage is
        gone), CorruptBlockError for records that fail verification (their blocks are not
        applied and following stops for good: reopen once the store is repaired),
        StorageError for I/O errors (the next look retries), ClosedError.
        On a writable database there is nothing to follow: returns 0."""
        self._engine.check_open()
        with self._follow_lock:
            return self._look()

    def follow_step(self) -> None:
        """One look of the follower thread (errors are kept in `follow_status`), then the
        background work a writer's driver would do: index rebuilds step under their throttle
        (a read-only open has no driver)."""
        e = self._engine
        e.check_open()
        with self._follow_lock:
            try:
                self._look()
            except ClosedError:
                raise
            except OstraconError as exc:
                self._follow["last_error"] = f"{type(exc).__name__}: {exc}"
        e.background_step(e.clock())

    def _look(self) -> int:
        f = self._follow
        f["looks"] += 1
        if f["stopped"] is not None:
            raise CorruptBlockError(str(f["stopped"]))
        tail = self.storage.tail()
        if tail is None:
            return 0
        try:
            new = self._take(tail)
        except CorruptBlockError as exc:
            # The storage has moved past these records: stop rather than go on with a gap
            # (reopening verifies everything again and reports it the same way).
            stopped = f["stopped"] = f"{exc}; following stopped"
            raise CorruptBlockError(stopped) from None
        f["blocks"] += new
        f["last_error"] = None
        return new

    def _take(self, tail: Tail) -> int:
        e = self._engine
        if tail.reset:
            fresh = verification.load(self._new_replica, self.storage, self.crypto.verify_actor,
                                      e.clock(), repair=False, on_corrupt="raise").replica
            with e.lock:
                e.check_open()
                envelopes = fresh.envelopes_since(e.replica.version_vector())
            self._follow["resets"] += 1
        else:
            envelopes = [r for _, r in tail.records]
        return self._merge_observed(envelopes)

    def _merge_observed(self, envelopes: Sequence[bytes]) -> int:
        e = self._engine
        new = 0
        with e.lock:
            e.check_open()
            r = e.replica
            if not envelopes and not r.held_count:
                return 0
            for i in range(0, max(len(envelopes), 1), FOLLOW_BATCH):
                result = r.apply_envelopes(envelopes[i:i + FOLLOW_BATCH], strict=True, wall_ms=e.clock())
                if result.rejected:
                    where, why = result.rejected[0]
                    raise CorruptBlockError(f"the followed store holds a record that fails verification "
                                            f"(record {i + where + 1} of a look: {why}); the blocks it "
                                            "covers are not applied")
                new += result.new
                self._publish_merged(result)
        return new
