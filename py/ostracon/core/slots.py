"""Sequence slots belong to seals; equivocation (docs/SYNC.md, "Sequence slots and
equivocation"), and the pending buffer blocks wait in until they are ready. A mixin of
core.replica.Replica; its state lives in Replica.__init__.

Blocks carry no signature of their own: a verified seal of the actor decides which block
owns each slot. Unsealed candidates are kept per slot (bounded, newest first); a seal
applies the blocks it names and discards the rest. Two verified seals of one actor over
overlapping ranges with different bytes prove an equivocation: the actor's log is frozen
before the first contested slot, and its blocks named by verified seals from there on are
applied as side blocks (in their documents' DAGs, outside the frozen log). PURE.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .block import KIND_BLOCK, KIND_SEAL, Change, Seal, batch_digest, decode_seal, envelope
from .clock import skew_limit

if TYPE_CHECKING:
    from .delivery import ApplyResult

#: Combinations of pending candidates (several blocks claiming one actor+seq) tried against
#: a seal's digest. Honest traffic has one candidate per seq; this bounds the hashing a
#: flood of forged blocks can cause while still finding the real block among a few fakes.
MAX_SEAL_CANDIDATE_COMBOS = 64
#: Pending blocks claiming one (actor, seq) slot: the newest are kept. The honest block
#: arrives right before its seal, so it is always among the newest few.
MAX_SLOT_CANDIDATES = 4
#: Bytes of blocks kept for slots that are already settled (a block for a seq that the log
#: already holds): candidate proof of an equivocation, applied as side blocks once a
#: verified seal names them. Oldest are dropped first.
MAX_CONFLICT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Equivocation:
    """Proof that `actor` signed two different histories: two verified seals over
    overlapping ranges. `seq` is the first contested slot (the quarantine point), `cids` the
    blocks at that slot as (this replica's log, the other seal's) where known, `seals` the
    two seals' bytes (each verifiable with the actor's public key)."""

    actor: bytes
    seq: int
    cids: tuple[bytes | None, bytes | None]
    seals: tuple[bytes, bytes]


class _Pending:
    __slots__ = ("change", "data", "side")

    def __init__(self, change: Change, data: bytes, side: bool = False) -> None:
        self.change = change
        self.data = data
        self.side = side          # applied outside the actor's log (quarantined actor)



class SealSlots:
    """Seal resolution and equivocation handling (state lives in Replica.__init__)."""

    actor: bytes
    blocks: dict[bytes, bytes]
    info: dict[bytes, Any]
    by_actor: dict[bytes, list[bytes]]
    seals: dict[bytes, list[tuple[int, int, bytes]]]
    quarantined: dict[bytes, int]
    proofs: dict[bytes, Equivocation]
    side: set[bytes]
    _side_at: dict[tuple[bytes, int], list[bytes]]
    _conflict: dict[bytes, _Pending]
    _conflict_at: dict[tuple[bytes, int], list[bytes]]
    _conflict_bytes: int
    _new_equivocations: list[Equivocation]
    _pending: dict[bytes, _Pending]
    _pending_by_seq: dict[tuple[bytes, int], list[bytes]]
    _sealed_pending: set[bytes]
    _unsealed_bytes: dict[bytes, int]

    _held: dict[bytes, None]
    _pending_bytes: int
    _seal_keys: set[bytes]
    _trusting: bool
    _waiting_parent: dict[bytes, dict[bytes, None]]
    sealed_upto: dict[bytes, int]
    require_signatures: bool
    wall_ms: int | None
    max_clock_skew_ms: int

    def seq_of(self, actor: bytes) -> int:
        raise NotImplementedError  # Replica's

    # ------------------------------------------------------------ clock bound and pending buffer

    def _limit(self) -> int | None:
        """Highest stamp we apply or adopt now (None: no wall clock known yet)."""
        if self.wall_ms is None:
            return None
        return skew_limit(self.wall_ms, self.max_clock_skew_ms)

    def set_wall(self, wall_ms: int) -> None:
        """Tell the replica the receiver's wall clock (ms); bounds accepted clock skew."""
        if type(wall_ms) is int and wall_ms >= 0:
            self.wall_ms = wall_ms

    @property
    def pending_bytes(self) -> int:
        """Bytes of blocks waiting in the pending buffer (bounded by max_pending_bytes)."""
        return self._pending_bytes

    @property
    def held_count(self) -> int:
        """Blocks held back because their stamp is too far ahead of our wall clock."""
        return len(self._held)

    def _store_seal(self, seal: Seal, data: bytes) -> None:
        self._seal_keys.add(seal.content)
        self._check_overlap(seal, data)
        stored = self.seals.setdefault(seal.actor, [])
        stored.append((seal.first, seal.last, data))
        stored.sort()
        if seal.first <= self.sealed_upto.get(seal.actor, 0) + 1:
            upto = max(self.sealed_upto.get(seal.actor, 0), seal.last)
            # Later seals may already be stored (received out of order): extend through them.
            for first, last, _ in stored:
                if first <= upto + 1 and last > upto:
                    upto = last
            self.sealed_upto[seal.actor] = upto

    def _ready(self, cid: bytes, p: _Pending) -> bool:
        ch = p.change
        if not p.side and ch.seq != self.seq_of(ch.actor) + 1:
            return False
        for parent in ch.parents:
            if parent not in self.blocks:
                self._waiting_parent.setdefault(parent, {})[cid] = None
                return False
        if self.require_signatures and not self._trusting and cid not in self._sealed_pending:
            return False
        if not self._trusting:
            limit = self._limit()
            if limit is not None and ch.hlc > limit:
                self._held[cid] = None  # too far in the future: wait for our clock
                return False
        return True

    def _add_pending(self, cid: bytes, p: _Pending) -> None:
        self._pending[cid] = p
        self._pending_bytes += len(p.data)
        if not p.side:
            self._pending_by_seq.setdefault((p.change.actor, p.change.seq), []).append(cid)
            a = p.change.actor
            self._unsealed_bytes[a] = self._unsealed_bytes.get(a, 0) + len(p.data)

    def _drop_pending(self, cid: bytes) -> _Pending:
        p = self._pending.pop(cid)
        self._pending_bytes -= len(p.data)
        key = (p.change.actor, p.change.seq)
        cands = self._pending_by_seq.get(key)
        if cands is not None and cid in cands:
            cands.remove(cid)
            if not cands:
                del self._pending_by_seq[key]
        if not p.side and cid not in self._sealed_pending:
            self._unsealed_bytes[key[0]] = self._unsealed_bytes.get(key[0], 0) - len(p.data)
        self._sealed_pending.discard(cid)
        self._held.pop(cid, None)
        return p

    # ------------------------------------------------------------ seal resolution

    def _check_overlap(self, seal: Seal, data: bytes) -> None:
        """A verified seal overlapping a stored one with other content proves equivocation
        by itself (an honest actor never seals a slot twice), blocks or not. Content, not
        bytes: an ECDSA signer signing one seal twice gets two signatures (core/actors.py)."""
        for first, last, other in self.seals.get(seal.actor, ()):
            if first <= seal.last and seal.first <= last and other != data:
                if (first, last) == (seal.first, seal.last) and decode_seal(other).content == seal.content:
                    continue  # one statement signed twice: the same history
                self._note_equivocation(seal.actor, max(first, seal.first), other, data)
                return

    def _note_equivocation(self, actor: bytes, seq: int, first: bytes, second: bytes) -> None:
        """Two verified seals of `actor` overlap from `seq` on: quarantine it from there."""
        if self.quarantined.get(actor, seq + 1) <= seq:
            return
        self.quarantined[actor] = seq
        log = self.by_actor.get(actor, [])
        ours = log[seq - 1] if seq <= len(log) else None
        theirs = next((c for c in self._side_at.get((actor, seq), []) + self._conflict_at.get((actor, seq), [])
                       + self._pending_by_seq.get((actor, seq), []) if c != ours), None)
        ev = Equivocation(actor, seq, (ours, theirs), (first, second))
        self.proofs.setdefault(actor, ev)
        self._new_equivocations.append(ev)
        # Pending log candidates of the quarantined range can never enter the log now: keep
        # them only as possible side blocks.
        for (a, s), cands in list(self._pending_by_seq.items()):
            if a == actor and s >= seq:
                for c in list(cands):
                    p = self._drop_pending(c)
                    self._keep_conflict(c, p)

    def _keep_conflict(self, cid: bytes, p: _Pending) -> None:
        if cid in self._conflict or cid in self.blocks:
            return
        size = len(p.data)
        while self._conflict and self._conflict_bytes + size > MAX_CONFLICT_BYTES:
            old = next(iter(self._conflict))
            q = self._conflict.pop(old)
            self._conflict_bytes -= len(q.data)
            key = (q.change.actor, q.change.seq)
            self._conflict_at[key].remove(old)
            if not self._conflict_at[key]:
                del self._conflict_at[key]
        if size > MAX_CONFLICT_BYTES:
            return
        self._conflict[cid] = p
        self._conflict_bytes += size
        self._conflict_at.setdefault((p.change.actor, p.change.seq), []).append(cid)

    def _candidates_at(self, actor: bytes, seq: int, side: bool) -> tuple[list[bytes], bool]:
        """(cids that may be `actor`'s block at `seq`, newest first; whether our log settles it).
        `side`: also consider blocks outside the log (quarantined actor, conflicting seal)."""
        log = self.by_actor.get(actor, [])
        settled = seq <= len(log)
        if not side:
            if settled:
                return [log[seq - 1]], True
            return self._pending_by_seq.get((actor, seq), [])[::-1], False
        out = [log[seq - 1]] if settled else []
        for group in (self._side_at, self._conflict_at, self._pending_by_seq):
            out.extend(c for c in group.get((actor, seq), [])[::-1] if c not in out)
        return out, False

    def _match(self, seal: Seal, side: bool) -> tuple[list[bytes] | None, bool]:
        """The CIDs of the seal's range among our candidates (newest combination first)."""
        options: list[list[bytes]] = []
        settled = True
        combos = 1
        for seq in range(seal.first, seal.last + 1):
            cands, fixed = self._candidates_at(seal.actor, seq, side)
            if not cands:
                return None, False  # wait for the rest of the range
            settled = settled and fixed
            combos *= len(cands)
            options.append(cands)
        newest = [o[0] for o in options]
        if batch_digest(newest) == seal.digest:
            return newest, settled
        if 1 < combos <= MAX_SEAL_CANDIDATE_COMBOS:
            for attempt in itertools.product(*options):
                if batch_digest(attempt) == seal.digest:
                    return list(attempt), settled
        return None, settled

    def _try_seal(self, seal: Seal, data: bytes, result: ApplyResult) -> bool:
        """Check a verified seal against the blocks it names; True once it is resolved.

        Blocks are not signed one by one, so anybody can send an unsealed block claiming
        (actor, seq): the seal decides. The newest candidate of each slot is tried first
        (the honest block arrives right before its seal), then a bounded search; candidates
        the seal rules out are dropped. A seal that contradicts our settled log, or that
        belongs to a quarantined actor's range, names side blocks (module docstring).
        """
        q = self.quarantined.get(seal.actor)
        side = q is not None and seal.last >= q
        cids, settled = self._match(seal, side)
        if cids is None and settled and not side:
            side = True  # contradicts our log: an equivocation, if the other blocks arrive
            cids, _ = self._match(seal, True)
        if cids is None:
            return False  # a pending candidate may be a forgery: wait for the real block
        self._store_seal(seal, data)
        result.seals += 1
        result.new_seals.append(data)
        log = self.by_actor.get(seal.actor, [])
        q = self.quarantined.get(seal.actor)
        for seq, c in zip(range(seal.first, seal.last + 1), cids, strict=True):
            if c in self.blocks:
                continue
            if q is not None and seq >= q or seq <= len(log):
                p: _Pending | None = self._conflict.pop(c, None)
                if p is not None:
                    self._conflict_bytes -= len(p.data)
                    self._conflict_at[(seal.actor, seq)].remove(c)
                    if not self._conflict_at[(seal.actor, seq)]:
                        del self._conflict_at[(seal.actor, seq)]
                elif c in self._pending:
                    p = self._drop_pending(c)
                if p is not None:
                    self._add_pending(c, _Pending(p.change, p.data, side=True))
                    self._sealed_pending.add(c)
                continue
            for other in list(self._pending_by_seq.get((seal.actor, seq), ())):
                if other != c:  # contradicts the seal: kept only as possible proof of equivocation
                    self._keep_conflict(other, self._drop_pending(other))
            if c in self._pending and c not in self._sealed_pending:
                self._sealed_pending.add(c)  # the actor's own now: no longer unsealed bytes
                self._unsealed_bytes[seal.actor] -= len(self._pending[c].data)
        return True

    def mark_side(self, cid: bytes, actor: bytes, seq: int) -> None:
        """Record a block loaded from a snapshot as a side block (outside the actor's log)."""
        self.side.add(cid)
        self._side_at.setdefault((actor, seq), []).append(cid)

    def proof_envelopes(self, actor: bytes) -> list[bytes]:
        """What a peer needs to see `actor`'s equivocation and both branches: every block of
        the actor from the quarantine point on that we hold (log and side blocks, in apply
        order) followed by every seal of the actor reaching that point."""
        q = self.quarantined.get(actor)
        if q is None:
            return []
        log = self.by_actor.get(actor, [])
        cids = log[q - 1:] + [c for c in self.side if self.info[c].actor == actor]
        cids.sort(key=lambda c: self.info[c].position)
        out = [envelope(KIND_BLOCK, self.blocks[c]) for c in cids if c in self.blocks]
        out.extend(envelope(KIND_SEAL, data) for _, last, data in self.seals.get(actor, []) if last >= q)
        return out

