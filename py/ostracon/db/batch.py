"""Atomic batches: several writes that are applied together or not at all (`send_many`).

What a batch is in the DAG: one block per write, exactly the block the same write would
make alone (a block belongs to one document, and a batch spans documents; a single write
keeps its CID whether or not it is part of a batch). What makes the blocks one unit is
where they travel, not a new block format:

- memory: every write of the batch runs under the state lock, which is held from the
  first write to the last; no reader, subscriber or other writer runs in between.
  Each write is applied for real, so later writes of the batch see the earlier ones
  (unique keys, preconditions, deletes), and its block is recorded in an undo log
  (`BatchLog`). A refused write rolls every earlier one back: blocks, per-actor logs,
  the clock, document states (restored in place from copies), index entries and the
  sorted id lists. Nothing was queued or announced, so nothing else needs undoing.
- events: change-feed events and listeners of the batch's writes are delivered once the
  whole batch is applied, in write order (so a subscriber that reads from its callback
  sees the whole batch).
- storage and sync: the blocks are queued to the sink together, so one flush appends all
  of them as one flush group, which storage makes atomic (the file adapter's commit group
  counts only once its last record is on disk; IndexedDB writes a group in one
  transaction): after a crash a batch is back whole or not at all, and an observer
  following the store (db/observer.py) takes whole groups. The batch also starts a
  fresh seal range (unsealed blocks before it are sealed first) and holds at most
  `MAX_BATCH_OPS` writes, so one seal covers it: a peer applies a sealed range only once
  it holds all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.block import OP_TEXT
from ..core.replica import MAX_SEAL_BLOCKS
from ..core.state import DocState

if TYPE_CHECKING:
    from .engine import Engine

#: Writes in one atomic batch: one seal covers at most MAX_SEAL_BLOCKS blocks, and a batch
#: must fit under one seal to reach peers and disk as one unit (module docstring).
MAX_BATCH_OPS = MAX_SEAL_BLOCKS


@dataclass
class _Saved:
    state: DocState | None      # the document before the batch (None: it did not exist)
    texts: bool                 # whether `state` owns copies of the text CRDTs


@dataclass
class BatchLog:
    """The undo log and the deferred effects of one batch (held under the state lock)."""

    engine: Engine
    order_len: int = 0
    clock_last: int = 0
    logs: dict[bytes, int | None] = field(default_factory=dict)   # actor -> log length before
    saved: dict[tuple[str, str], _Saved] = field(default_factory=dict)
    new_collections: set[str] = field(default_factory=set)   # absent before the batch
    blocks: list[bytes] = field(default_factory=list)              # block bytes, write order
    events: list[tuple[str, str, DocState, tuple]] = field(default_factory=list)
    now: int = 0

    def __post_init__(self) -> None:
        r = self.engine.replica
        self.order_len = len(r.order)
        self.clock_last = r.clock.last

    def before_write(self, collection: str, doc_id: str, ops: list, actor: bytes) -> None:
        """Called before a write of the batch commits: keep what undoing it needs."""
        r = self.engine.replica
        if actor not in self.logs:
            log = r.by_actor.get(actor)
            self.logs[actor] = None if log is None else len(log)
        text = any(op[0] == OP_TEXT for op in ops)
        key = (collection, doc_id)
        saved = self.saved.get(key)
        state = r.doc(collection, doc_id)
        if saved is None:
            self.saved[key] = _Saved(None if state is None else state.copy(text), text)
            if collection not in r.collections:
                self.new_collections.add(collection)
        elif text and not saved.texts and saved.state is not None and state is not None:
            # The text CRDTs were shared so far: no text op of the batch has touched them yet.
            saved.state.texts = state.copy(True).texts
            saved.texts = True

    def written(self, collection: str, doc_id: str, data: bytes, state: DocState, now: int) -> None:
        """A write of the batch is applied: its block and its event wait for the commit."""
        self.blocks.append(data)
        self.now = now
        event = (state.version, state.deleted, state.min_t >> 16, state.max_t >> 16,
                 state.user_fields())   # a new dict per version (never mutated)
        self.events.append((collection, doc_id, state, event))

    def rollback(self) -> None:
        """Undo every write of the batch (the state lock is held)."""
        e = self.engine
        r = e.replica
        for cid in r.order[self.order_len:]:
            r.blocks.pop(cid, None)
            r.info.pop(cid, None)
        del r.order[self.order_len:]
        for actor, n in self.logs.items():
            if n is None:
                r.by_actor.pop(actor, None)
            else:
                del r.by_actor[actor][n:]
        r.clock.last = self.clock_last
        for (collection, doc_id), saved in self.saved.items():
            docs = r.collections.get(collection, {})
            state = docs.get(doc_id)
            if saved.state is None:
                docs.pop(doc_id, None)
                e.indexing.forget(collection, doc_id, e.now)
            elif state is not None:
                state.restore(saved.state)
                e.indexing.maintain(collection, doc_id, state, e.now)
        for collection in self.new_collections:
            if not r.collections.get(collection, True):
                del r.collections[collection]

    def commit(self) -> list[tuple[str, str, DocState, Any]]:
        """Queue the blocks to the sink together; returns the events to announce."""
        sink = self.engine.sink
        for data in self.blocks:
            sink.add_local(data, self.now)
        return self.events
