"""Keeping a database sound and small: `verify()` re-checks everything it holds,
`compact()` / `compaction()` write snapshots (optionally pruning old history bodies) and let
storage drop the log they cover.

A mixin of `Database` (its state lives in `Database.__init__`); the compaction in steps
itself is db/compaction.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import ValidationError
from ..core.limits import check_callable_option
from ..core.snapshot import SNAPSHOT_FORMAT
from ..core.verify import verify_replica
from .compaction import STEP_DOCS, Compaction
from .locking import locked

if TYPE_CHECKING:
    from ..storage.base import OpenReport, Storage
    from .engine import Engine

#: Snapshots `compact()` keeps by default: the new one only (each snapshot is a full copy of
#: the state; keeping more is an explicit choice for audit).
KEEP_SNAPSHOTS = 1


class MaintenanceMixin:
    """Verification and compaction methods of `Database`."""

    _engine: Engine
    storage: Storage
    identity: Any
    crypto: Any
    _open_notes: list[str]
    _open_problems: list[str]
    _seal_chain: Any
    _compacted_at: int | None
    _snapshot_format: int | None  # of the snapshot opened or last written (None: none)
    _compaction: Compaction | None = None  # the compaction in steps under way, if any
    flush: Callable[[], None]            # provided by Database
    _state_hash: Callable[[], str]       # provided by ReplicationMixin

    @property
    def snapshot_outdated(self) -> bool:
        """Was the store opened from a snapshot of an older format (core/snapshot.py: opening
        one rebuilds its documents by replaying its blocks, at every open)? Then the next
        compaction writes a current-format snapshot even with nothing new since it, once;
        `compact()` natively, the idle work in the browser (runtime/browser/idle.py)."""
        fmt = self._snapshot_format
        return fmt is not None and fmt != SNAPSHOT_FORMAT

    @locked
    def open_report(self) -> OpenReport:
        rep = self.storage.open_report()
        if not self._open_notes:
            return rep
        return dataclasses.replace(rep, notes=rep.notes + tuple(self._open_notes))

    @locked
    def verify(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Re-verify everything: every record in storage, every CID, DAG link, sequence slot,
        seal digest and seal signature (core/verify.py), plus what open found. Returns the
        problems (empty: verified). Raises CorruptLogError for damaged storage framing,
        ValidationError if `progress` is not callable."""
        self._engine.check_open()
        check_callable_option("progress", progress)
        problems = list(self._open_problems)
        rep = self.open_report()
        if rep.truncated_bytes:
            problems.append(f"log: a damaged or torn tail of {rep.truncated_bytes} bytes was cut off at "
                            f"open ({'; '.join(rep.notes) or 'see open_report'})")
        problems += [f"log: damaged data was quarantined to {q}" for q in rep.quarantined]
        check_storage = getattr(self.storage, "verify", None)
        if check_storage is not None:
            check_storage()  # reads every record of every segment; raises CorruptLogError
        r = self._engine.replica
        own = () if self.storage.read_only else (r.actor, *r.stage_actors)  # sealed by the next flush
        return problems + verify_replica(r, self.crypto.verify_actor, progress, awaiting_seal=own)

    def compact(self, prune_before: int | None = None, *, keep_snapshots: int = KEEP_SNAPSHOTS) -> int:
        """Flush, write a snapshot of every block and seal, and let storage drop the log it
        covers and the older snapshots except the newest `keep_snapshots` (1: only the new
        one; more keep earlier states for audit). Returns the snapshot's record position.

        The snapshot is encoded in steps (`compaction()`): writes of other threads go on
        meanwhile and land in the log after it.

        History stays complete unless `prune_before` (wall ms) is given: then the bodies of
        blocks older than it (except current heads) are dropped, keeping a verifiable
        checkpoint (state hash, frontier CIDs, digest of the pruned CIDs). CIDs, DAG links
        and seals stay; history, time travel and sync that need a dropped body raise
        HistoryPrunedError instead of answering short. Pruning holds the state lock throughout.
        """
        e = self._engine
        if prune_before is not None:
            e.check_writable()
            self.flush()
            with e.sink.io_lock:
                with e.lock:
                    e.check_open()
                    self._abandon_compaction()   # its cut still holds the bodies pruned here
                    e.sink.flush_holding_locks()
                    e.replica.prune(prune_before, self._state_hash)
        run = self._start_compaction(keep_snapshots, STEP_DOCS, force=prune_before is not None)
        while not run.step():
            pass
        return run.cut

    def compaction(self, *, keep_snapshots: int = KEEP_SNAPSHOTS, step_docs: int = STEP_DOCS) -> Compaction:
        """Start a compaction in steps (db/compaction.py): flush, take the cut (every record
        so far) and return the run; call its `step()` until it returns True (each step holds
        the state lock for at most `step_docs` documents' worth of encoding). Starting one
        abandons an unfinished earlier run. A run with nothing new since this session's last
        snapshot is finished at once (`position` None); a run after opening an old-format
        snapshot (`snapshot_outdated`) writes one even if it is not smaller."""
        return self._start_compaction(keep_snapshots, step_docs, force=False)

    def _start_compaction(self, keep_snapshots: int, step_docs: int, *, force: bool) -> Compaction:
        e = self._engine
        e.check_writable()
        if type(keep_snapshots) is not int or keep_snapshots < 1:
            raise ValidationError("keep_snapshots must be an int >= 1")
        self.flush()
        with e.sink.io_lock:
            with e.lock:
                e.check_open()
                self._abandon_compaction()
                e.sink.flush_holding_locks()   # writes racing with compaction land here too
                position = self.storage.last_position()
                force = force or self.snapshot_outdated  # a rewrite pays at every later open
                run = Compaction(e, self.storage, self._seal_chain, self.identity.sign, position,
                                 keep_snapshots=keep_snapshots, step_docs=step_docs,
                                 fresh=force or position != self._compacted_at, force=force,
                                 on_done=self._compacted)
                self._compaction = run
        return run

    def _abandon_compaction(self) -> None:
        run, self._compaction = self._compaction, None
        if run is not None:
            run.abandon()

    def _compacted(self, position: int) -> None:
        self._compacted_at = position
        self._snapshot_format = SNAPSHOT_FORMAT

    @property
    def checkpoint(self) -> dict | None:
        """The pruning checkpoint (None if nothing was ever pruned)."""
        return self._engine.replica.checkpoint
