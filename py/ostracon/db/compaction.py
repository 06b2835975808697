"""Compaction in steps: a snapshot of a fixed cut, encoded while writes go on, then swapped in.

`Database.compaction()` takes the cut (everything written so far, flushed: record position P)
and returns a `Compaction`; each `step()` encodes a bounded part of the snapshot
(core/snapshot_encode.py) holding the state lock only for that part, so writes, reads and (in
the browser worker) calls are served between steps. Writes that land meanwhile go to the log
after P as usual. The last step swaps: the snapshot covering 1..P is stored (atomically, by
the storage adapter), then storage drops the records <= P and older snapshots.

Crash safety: steps before the swap write nothing, so a crash there leaves the old snapshot
and log as they were, plus whatever was appended meanwhile. A crash during the swap leaves
either the old state (snapshot not stored) or the new snapshot beside records it covers
(replayed after it from P on; a later compaction drops them): both open to the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.block import KIND_SEAL, open_envelope
from ..core.snapshot_encode import STEP_DOCS, SnapshotEncoder
from ..core.verify import WATERMARK_META, SealChain
from ..storage.base import Storage

__all__ = ["STEP_DOCS", "Compaction", "snapshot_pays"]

#: Compaction writes a snapshot only if it is smaller than the snapshot and records it
#: replaces by at least this much: room for a snapshot file's header (28 bytes) and a new
#: log segment's header (48 bytes), so a compacted store is never larger than before.
COMPACT_MARGIN_BYTES = 128


def snapshot_pays(storage: Storage, snap: bytes, position: int) -> bool:
    """Is `snap` smaller than what it replaces (the current snapshot plus the records after
    it up to `position`, payload bytes only), with `COMPACT_MARGIN_BYTES` to spare?"""
    prev = storage.load_snapshot()
    after = 0 if prev is None else prev[1]
    replaced = 0 if prev is None else len(prev[0])
    for pos, rec in storage.records(after):
        if pos > position:
            break
        replaced += len(rec)
        if replaced > len(snap) + COMPACT_MARGIN_BYTES:
            return True
    return False


class Compaction:
    """One compaction in steps (module docstring); made by `Database.compaction()`.

    `cut`: the record position the snapshot covers. `step()` → True once finished; then
    `position` is `cut` if the snapshot was written, or None when not (`fresh` False:
    nothing new since the last one; not smaller than what it would replace, unless `force`;
    abandoned: by a newer run, a prune or the database's close). `done` says whether it
    finished. Errors of the swap (StorageError) are raised by `step`; the run is then over
    and the store opens as before the swap or as after it.
    """

    def __init__(self, engine: Any, storage: Storage, chain: SealChain, sign: Callable[[bytes], bytes],
                 cut: int, *, keep_snapshots: int, step_docs: int = STEP_DOCS, fresh: bool = True,
                 force: bool = False, on_done: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self.storage = storage
        self.chain = chain
        self.sign = sign
        self.cut = cut
        self.keep_snapshots = keep_snapshots
        self.on_done = on_done
        self.position: int | None = None
        self.force = force
        self.done = not fresh
        self.steps = 0
        self.encoder = SnapshotEncoder(engine.replica, step_docs=step_docs) if fresh else None

    def step(self) -> bool:
        """Encode one bounded part of the snapshot, or swap it in; True once finished."""
        e = self.engine
        try:
            with e.lock:
                enc = self.encoder
                if self.done or enc is None:  # finished, or abandoned (by another thread too)
                    self.done = True
                    return True
                e.check_open()
                if enc.replica is not e.replica:
                    raise RuntimeError("the database's replica was replaced during compaction")
                self.steps += 1
                if not enc.step():
                    return False
            self._swap(enc, self.cut)
        except BaseException:
            self.abandon()
            raise
        self.done = True
        return True

    def abandon(self) -> None:
        """Stop without writing anything (idempotent); the encoding's memory is let go."""
        enc, self.encoder = self.encoder, None
        if enc is not None:
            enc.close()
        self.done = True

    def _swap(self, enc: SnapshotEncoder, position: int) -> None:
        """Store the snapshot and drop what it covers. A storage that stages snapshots
        (FileStorage `stage_snapshot`) writes and syncs the file before any lock is taken:
        the records up to the cut are durable since the cut was taken, so sink batches and
        writers go on during that I/O. Then, holding the sink's I/O lock (no batch reaches
        storage meanwhile) and the state lock only to flush what the log after the cut
        holds, the snapshot is committed (a rename) and the log it covers dropped."""
        e, storage, snap = self.engine, self.storage, enc.data
        assert snap is not None
        # Keeping several snapshots is a request for audit states: written whenever there
        # is something new; otherwise only when it makes the store smaller.
        if not self.force and self.keep_snapshots == 1 and not snapshot_pays(storage, snap, position):
            return  # the log is already the smaller form: never grow a store
        stage = getattr(storage, "stage_snapshot", None)
        staged = stage(snap, position) if stage is not None else None
        try:
            with e.sink.io_lock:
                with e.lock:
                    e.check_open()
                    if self.encoder is not enc:
                        raise _Abandoned  # by a prune or a newer run while the file was written
                    e.sink.flush_holding_locks()
                if staged is not None:
                    storage.commit_snapshot(staged)  # type: ignore[attr-defined]
                    staged = None
                else:
                    storage.write_snapshot(snap, position)
                storage.compact(position, self.keep_snapshots)
                self.position = position
                record_compaction(enc.seals, position, storage, e.replica.actor, self.chain, self.sign)
        except _Abandoned:
            return
        finally:
            if staged is not None:
                storage.discard_snapshot(staged)  # type: ignore[attr-defined]
        if self.on_done is not None:
            self.on_done(position)


class _Abandoned(Exception):
    """The run was abandoned while its snapshot was staged (nothing is committed)."""


def record_compaction(seals: list[bytes], position: int, storage: Storage, actor: bytes,
                      chain: SealChain, sign: Callable[[bytes], bytes]) -> None:
    """After a snapshot replaced the log up to `position`: the seal chain restarts as an open
    reads it (db/verification.py): the snapshot's seals in its order, then the seals of the
    records after `position` in log order; the watermark is signed again."""
    fresh = SealChain()
    for s in seals:
        fresh.add(s)
    for _, rec in storage.records(position):
        if len(rec) > 1 and rec[1] == KIND_SEAL:
            fresh.add(open_envelope(rec)[1])
    chain.count, chain.digest = fresh.count, fresh.digest
    storage.set_meta(WATERMARK_META, chain.watermark(actor, sign))
    storage.flush()
