"""The replica: every block it knows, per-document CRDT state, per-actor logs and seals.

Pure: time arrives as `wall_ms` arguments, signing and verification as callables.

Received blocks and seals are delivered causally (core/delivery.py): the per-actor logs are
always gap-free and every document DAG is closed under parents.

Sequence slots belong to seals (docs/SYNC.md, "Sequence slots and equivocation"): unsealed
blocks claim nothing, and a seal discards the pending blocks that contradict it. Two
different verified seals of one actor over overlapping ranges are an equivocation: the
actor's log is frozen just before the first contested slot on every replica (it is
quarantined), and its signed blocks from there on are accepted as *side blocks* (members of
their documents' DAGs outside the frozen log), so every replica ends up with both branches
and honest writes built on either branch apply everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import NamedTuple

from . import cid as cidlib
from . import clock as hlc
from .actors import check_actor
from .block import (
    KIND_BLOCK,
    KIND_SEAL,
    MAX_BLOCK_BYTES,
    MAX_PARENTS,
    Change,
    Seal,
    decode_change,
    decode_seal,
    envelope,
    make_seal,
)
from .clock import DEFAULT_MAX_CLOCK_SKEW_MS, HybridClock
from .delivery import (  # noqa: F401 (limits and ApplyResult re-exported)
    MAX_PENDING_BLOCKS,
    MAX_PENDING_BYTES,
    MAX_PENDING_SEALS,
    MAX_PENDING_SEALS_PER_ACTOR,
    MAX_UNSEALED_BYTES_PER_ACTOR,
    ApplyResult,
    CausalDelivery,
    Verify,
)
from .errors import HistoryPrunedError, OwnHistoryMissingError, ValidationError
from .slots import MAX_CONFLICT_BYTES, MAX_SEAL_CANDIDATE_COMBOS, MAX_SLOT_CANDIDATES, Equivocation, SealSlots, _Pending  # noqa: F401 (re-exported)
from .state import DocState

#: Blocks covered by one seal. A receiver must hold a whole sealed range before applying
#: any of it, so this bounds its pending buffer per actor and keeps frames streamable.
MAX_SEAL_BLOCKS = 1000
Sign = Callable[[bytes], bytes]


class BlockInfo(NamedTuple):
    """Where an applied block belongs, kept per CID (`Replica.info`)."""

    collection: str
    doc_id: str
    actor: bytes
    seq: int
    position: int     # index in apply order (`Replica.order`)
    height: int       # the block's height in its document's DAG


class Replica(CausalDelivery):
    def __init__(self, actor: bytes, *, require_signatures: bool = True,
                 verify: Verify | None = None,
                 max_pending_blocks: int = MAX_PENDING_BLOCKS,
                 max_pending_bytes: int = MAX_PENDING_BYTES,
                 max_unsealed_bytes_per_actor: int = MAX_UNSEALED_BYTES_PER_ACTOR,
                 max_pending_seals: int = MAX_PENDING_SEALS,
                 max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS) -> None:
        check_actor(actor)
        if require_signatures and verify is None:
            raise ValidationError("require_signatures needs a verify function")
        self.actor = actor
        self.require_signatures = require_signatures
        self.verify = verify
        self.max_pending_blocks = max_pending_blocks
        self.max_pending_bytes = max_pending_bytes
        self.max_unsealed_bytes_per_actor = max_unsealed_bytes_per_actor
        self.max_pending_seals = max_pending_seals
        self.max_clock_skew_ms = max_clock_skew_ms
        self.wall_ms: int | None = None   # the receiver's latest wall clock reading (ms)
        self._pending_bytes = 0
        self._unsealed_bytes: dict[bytes, int] = {}     # actor -> bytes of its unsealed pending
        self._pending_seal_count = 0
        self._held: dict[bytes, None] = {}              # pending cids held for clock skew
        # Equivocation (see the module docstring): actor -> first contested seq, the proof,
        # side blocks, and blocks for settled slots that may be named by a conflicting seal.
        self.quarantined: dict[bytes, int] = {}
        self.proofs: dict[bytes, Equivocation] = {}
        self.side: set[bytes] = set()
        self._side_at: dict[tuple[bytes, int], list[bytes]] = {}
        self._conflict: dict[bytes, _Pending] = {}
        self._conflict_at: dict[tuple[bytes, int], list[bytes]] = {}
        self._conflict_bytes = 0
        self._new_equivocations: list[Equivocation] = []
        self.clock = HybridClock()
        self.blocks: dict[bytes, bytes] = {}           # cid -> block bytes
        self.info: dict[bytes, BlockInfo] = {}          # cid -> where the block belongs
        self.order: list[bytes] = []                    # cids in apply order (causal)
        self.by_actor: dict[bytes, list[bytes]] = {}    # actor -> cids by seq-1
        self.collections: dict[str, dict[str, DocState]] = {}
        self.seals: dict[bytes, list[tuple[int, int, bytes]]] = {}  # actor -> [(first, last, seal bytes)]
        self.sealed_upto: dict[bytes, int] = {}         # actor -> highest seq covered by a verified seal
        self._pending: dict[bytes, _Pending] = {}       # cid -> waiting block
        self._pending_by_seq: dict[tuple[bytes, int], list[bytes]] = {}
        # parent cid -> waiting cids, as an insertion-ordered set (a dict, not a list: a block
        # re-checked on every batch was appended again each time, growing without bound)
        self._waiting_parent: dict[bytes, dict[bytes, None]] = {}
        self._sealed_pending: set[bytes] = set()        # pending cids covered by a verified seal
        self._pending_seals: dict[bytes, list[Seal]] = {}
        self._seal_keys: set[bytes] = set()             # seal contents seen (dedupe; Seal.content)
        self._trusting = False                          # replaying our own storage
        # Blocks whose bodies compaction dropped (prune_before): their CIDs, links and seals
        # stay known, so state, DAG and seal digests remain verifiable; the bodies do not.
        self.pruned: set[bytes] = set()
        self.checkpoint: dict | None = None
        self.own_durable: int | None = None   # set by the driver after each durable flush
        # Further local signers (stage identities) -> their highest durable seq.
        self.stage_actors: dict[bytes, int] = {}
        # Highest own seq this device ever made (recorded apart from snapshots): local
        # writes wait until the log reaches it, so a sequence number is never reused.
        self.own_floor = 0
        # Called with a document's state before it changes (a merge here, a local text edit in
        # db/text.py): a snapshot encoder running in steps keeps the state of its cut
        # (core/snapshot_encode.py). None when no encoder runs.
        self.before_change: Callable[[DocState], None] | None = None

    # ------------------------------------------------------------ reading

    def doc(self, collection: str, doc_id: str) -> DocState | None:
        col = self.collections.get(collection)
        return None if col is None else col.get(doc_id)

    def seq_of(self, actor: bytes) -> int:
        log = self.by_actor.get(actor)
        return 0 if log is None else len(log)

    def add_stage_actor(self, actor: bytes) -> None:
        """Make `actor` a further local signer (a stage identity, db/provenance.py): its
        writes are committed here and served, like our own, only once sealed and durable.
        Everything of it already applied (read from storage) counts as durable."""
        check_actor(actor)
        if actor not in self.stage_actors and actor != self.actor:
            self.stage_actors[actor] = self.seq_of(actor)

    def servable(self, actor: bytes) -> int:
        """Highest seq of `actor` we can send: sealed for us, applied for others."""
        staged = self.stage_actors.get(actor)
        if staged is not None:
            return min(self.sealed_upto.get(actor, 0), staged)
        if actor == self.actor:
            # Our own blocks: sealed *and* durable (the driver sets own_durable after a
            # successful storage flush), so a peer never holds what we could lose.
            durable = self.seq_of(actor) if self.own_durable is None else self.own_durable
            return min(self.sealed_upto.get(actor, 0), durable)
        n = self.seq_of(actor)
        if self.require_signatures:
            n = min(self.sealed_upto.get(actor, 0), n)
        q = self.quarantined.get(actor)
        # A quarantined actor's log is frozen before its first contested slot on every
        # replica, whichever branch each one logged: vectors and tips digests agree again.
        return n if q is None else min(n, q - 1)

    def version_vector(self) -> dict[bytes, int]:
        out = {}
        for actor in sorted(self.by_actor):
            n = self.servable(actor)
            if n:
                out[actor] = n
        return out

    def change(self, cid: bytes) -> Change:
        data = self.blocks.get(cid)
        if data is None:
            if cid in self.pruned:
                raise HistoryPrunedError(f"commit {cidlib.format_cid(cid)} is older than the "
                                         f"pruning horizon: its body was dropped by compaction")
            raise KeyError(cid)
        return decode_change(data)

    def heads(self) -> list[bytes]:
        out: list[bytes] = []
        for col in self.collections.values():
            for d in col.values():
                out.extend(d.heads)
        out.sort()
        return out

    def unsealed_count(self) -> int:
        return sum(self.seq_of(a) - self.sealed_upto.get(a, 0) for a in (self.actor, *self.stage_actors))

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------ local writes

    def wide_fan(self, collection: str, doc_id: str) -> bool:
        """Does the document have more heads than one change may name as parents? Such a fan
        only comes from outside (many members writing at once, or a hostile one forking on
        purpose); `commit(..., merge=True)` narrows it."""
        state = self.doc(collection, doc_id)
        return state is not None and len(state.heads) > MAX_PARENTS

    def commit(self, collection: str, doc_id: str, ops: list, wall_ms: int,
               schema: bytes | None = None, meta: dict | None = None,
               actor: bytes | None = None, *, merge: bool = False) -> tuple[bytes, bytes, DocState]:
        """Make, apply and return (cid, block bytes, doc state) for a local change.

        `ops` must already be validated (field names checked, values canonical); `meta`
        is commit metadata as block.check_meta returns it; `actor` a stage actor
        (add_stage_actor) to commit as instead of our own. `merge=True` (with no ops) makes
        the change that merges the first MAX_PARENTS heads in CID order, so a fan of more
        heads than one change may name takes one such change per MAX_PARENTS - 1 extra heads
        before a write: remote input never makes a local write fail. Otherwise a document
        with more than MAX_PARENTS heads raises ValidationError.
        """
        if self.seq_of(self.actor) < self.own_floor:
            raise OwnHistoryMissingError(
                f"this device's own blocks {self.seq_of(self.actor) + 1}..{self.own_floor} are missing "
                "locally; sync with a peer to pull them back before writing (a write now would reuse "
                "their sequence numbers)")
        docs = self.collections.get(collection)
        state = None if docs is None else docs.get(doc_id)
        # A new DocState is registered only once the block is built, so a write refused below
        # (e.g. a lone surrogate in a field name, an oversized block) leaves no empty document
        # behind for get() and state_hash() to see.
        fresh = state is None
        if state is None:
            state = DocState(collection, doc_id)
        parents = tuple(sorted(state.heads))
        height = state.height + 1
        if merge:
            if ops or fresh:
                raise ValidationError("a merge change has no ops and needs an existing document")
            parents = parents[:MAX_PARENTS]
            height = 1 + max(self.info[p].height for p in parents)
        elif len(parents) > MAX_PARENTS:
            raise ValidationError(f"document has more than {MAX_PARENTS} concurrent heads: merge them first")
        by = self.actor
        if actor is not None and actor != self.actor:
            if actor not in self.stage_actors:
                raise ValidationError("not a local signing identity of this database")
            by = actor
        ch = Change(collection, doc_id, parents, height, by,
                    self.seq_of(by) + 1, self.clock.now(wall_ms), tuple(ops), schema, meta)
        data = ch.encode()
        if len(data) > MAX_BLOCK_BYTES:
            # Every decoder refuses such a block (our own on reopen too): refuse the write.
            raise ValidationError(f"the change is {len(data)} bytes encoded; a block may hold "
                                  f"at most {MAX_BLOCK_BYTES}")
        cid = cidlib.compute(data)
        if fresh:
            if docs is None:
                docs = self.collections[collection] = {}
            docs[doc_id] = state
        self._apply(cid, data, ch, state)
        return cid, data, state

    def seal_local(self, sign: Sign, stage_signers: Mapping[bytes, Sign] | None = None) -> list[bytes]:
        """Seal every unsealed local block (in ranges of MAX_SEAL_BLOCKS); returns seal bytes.
        Blocks of stage actors are sealed by their own signers (`stage_signers`)."""
        out = []
        signers = [(self.actor, sign)] + sorted((stage_signers or {}).items())
        for actor, signer in signers:
            log = self.by_actor.get(actor, [])
            start = self.sealed_upto.get(actor, 0)
            while start < len(log):
                end = min(len(log), start + MAX_SEAL_BLOCKS)
                seal = make_seal(actor, start + 1, log[start:end], signer)
                data = seal.encode()
                self._store_seal(seal, data)
                out.append(data)
                start = end
        return out

    # ------------------------------------------------------------ merge

    def _apply(self, cid: bytes, data: bytes, ch: Change, state: DocState | None = None,
               side: bool = False) -> None:
        if state is None:
            docs = self.collections.get(ch.collection)
            if docs is None:
                docs = self.collections[ch.collection] = {}
            state = docs.get(ch.doc_id)
            if state is None:
                state = docs[ch.doc_id] = DocState(ch.collection, ch.doc_id)
        if self.before_change is not None:
            self.before_change(state)
        state.apply(cid, ch)
        self.blocks[cid] = data
        self.info[cid] = BlockInfo(ch.collection, ch.doc_id, ch.actor, ch.seq, len(self.order), ch.height)
        self.order.append(cid)
        if side:
            self.side.add(cid)
            self._side_at.setdefault((ch.actor, ch.seq), []).append(cid)
        else:
            log = self.by_actor.get(ch.actor)
            if log is None:
                log = self.by_actor[ch.actor] = []
            log.append(cid)
        self.clock.observe(ch.hlc, self._limit())

    # ------------------------------------------------------------ sync support

    def envelopes_since(self, vector: dict[bytes, int]) -> list[bytes]:
        """Envelopes (blocks, each range followed by its seals) that `vector` lacks."""
        wanted: list[bytes] = []
        for actor, log in self.by_actor.items():
            have = vector.get(actor, 0)
            upto = self.servable(actor)
            if have < upto:
                wanted.extend(log[have:upto])
        index = self.info
        wanted.sort(key=lambda c: index[c].position)
        out: list[bytes] = []
        emitted_seals: set[bytes] = set()
        # The seal covering each requester's tip comes first: if the requester logged a
        # different block there (an equivocation), this seal is the proof it needs.
        for actor in sorted(self.seals):
            have = vector.get(actor, 0)
            if 0 < have < self.servable(actor):
                tip = next((d for _, last, d in self.seals[actor] if last == have), None)  # else with its range
                if tip is not None:
                    emitted_seals.add(tip)
                    out.append(envelope(KIND_SEAL, tip))
        last_of_range: dict[tuple[bytes, int], list[bytes]] = {}
        for actor, seals in self.seals.items():
            have = vector.get(actor, 0)
            for _first, last, data in seals:
                if last > have:
                    last_of_range.setdefault((actor, min(last, self.servable(actor))), []).append(data)
        blocks = self.blocks
        if self.pruned and not self.pruned.isdisjoint(wanted):
            raise HistoryPrunedError("the requested blocks include some older than this "
                                     "replica's pruning horizon; sync from an unpruned replica")
        for c in wanted:
            out.append(envelope(KIND_BLOCK, blocks[c]))
            info = index[c]
            actor, seq = info.actor, info.seq
            for data in last_of_range.get((actor, seq), ()):
                if data not in emitted_seals:
                    emitted_seals.add(data)
                    out.append(envelope(KIND_SEAL, data))
        for actor in sorted(self.quarantined):
            if vector.get(actor, 0) < self.quarantined[actor]:
                out.extend(e for e in self.proof_envelopes(actor) if e not in out)
        return out

    def new_blocks(self, count: int) -> list[bytes]:
        """Block bytes of the last `count` applied blocks, in apply order (what a merge just
        added, for the write sink to persist)."""
        if count <= 0:
            return []
        return [self.blocks[c] for c in self.order[len(self.order) - count:]]

    def add_trusted_seal(self, data: bytes) -> None:
        """Store a seal read back from our own storage or snapshot (verified when received)."""
        seal = decode_seal(data)
        if seal.content not in self._seal_keys:
            self._store_seal(seal, data)

    # ------------------------------------------------------------ compaction

    def prune(self, horizon_ms: int, state_hash: Callable[[], str]) -> int:
        """Drop the bodies of blocks older than `horizon_ms` (wall ms), except current heads.

        CIDs, DAG links and seals stay known, so state and seal digests remain verifiable;
        `checkpoint` records the horizon, the number and digest of pruned CIDs, the frontier
        (kept-block parents that were pruned) and `state_hash()` at the time. Returns the
        number of bodies dropped now. Reading a dropped body raises HistoryPrunedError.
        """
        if type(horizon_ms) is not int or horizon_ms < 0:
            raise ValidationError("prune_before must be a wall time in ms (int >= 0)")
        heads = set(self.heads())
        drop = [c for c in self.order
                if c in self.blocks and c not in heads and hlc.wall_ms(self.change(c).hlc) < horizon_ms]
        if not drop:
            return 0
        dropped = set(drop)
        frontier: set[bytes] = set()
        for c in self.order:
            if c in self.blocks and c not in dropped:
                frontier.update(p for p in self.change(c).parents if p in dropped or p in self.pruned)
        for c in drop:
            del self.blocks[c]
        self.pruned |= dropped
        prev = self.checkpoint or {}
        self.checkpoint = {
            "horizon": max(horizon_ms, prev.get("horizon", 0)),
            "pruned": len(self.pruned),
            "pruned_digest": hashlib.sha256(b"".join(c for c in self.order if c in self.pruned)).hexdigest(),
            "frontier": sorted(cidlib.format_cid(c) for c in frontier),
            "state_hash": state_hash(),
        }
        return len(drop)

    def all_envelopes(self) -> list[bytes]:
        """Every applied block and stored seal, in apply order (for snapshots)."""
        return self.envelopes_since({})
