"""Causal delivery: how received blocks and seals enter a replica. A mixin of
core.replica.Replica (its state lives in Replica.__init__), built on the seal slots and
pending buffer of core.slots. PURE.

Delivery is causal. A received block is applied once (1) its actor's previous sequence
number is applied, (2) all its parents are applied, (3) if signatures are required, a
verified seal of its actor covers it, and (4) its stamp is not beyond `max_clock_skew_ms`
ahead of the receiver's wall clock (such a block is held, not refused, until the receiver's
clock catches up). Until then it waits in a pending buffer bounded in blocks and bytes. So
the per-actor logs are always gap-free (a version vector describes them exactly) and every
document DAG is closed under parents (history and time travel never meet a hole).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import cid as cidlib
from .block import KIND_BLOCK, KIND_SEAL, Change, Seal, decode_change, decode_seal, open_envelope
from .errors import CorruptBlockError
from .slots import MAX_SLOT_CANDIDATES, Equivocation, SealSlots, _Pending
from .state import DocState

#: Blocks waiting for a parent, a predecessor or a seal. Bounds what a peer can make us
#: hold; anything beyond is refused and will be asked for again by sync gap detection.
MAX_PENDING_BLOCKS = 200_000
#: Bytes of all pending blocks together. A hostile member can send blocks that never apply
#: (forged, far-future, missing parents); this caps the memory they cost (the block count
#: alone let 400 blocks of 250 KB hold 100 MB+). Beyond it blocks are refused and asked for
#: again later by sync; 64 MiB holds a whole honest sink batch of maximal blocks twice.
MAX_PENDING_BYTES = 64 * 1024 * 1024
#: Bytes of *unsealed* pending blocks claiming one actor. Forgeries in a victim's name can
#: then never crowd the rest of the space out of the pending buffer. Blocks that a pending
#: verified seal covers do not count against it (they are the actor's own).
MAX_UNSEALED_BYTES_PER_ACTOR = 16 * 1024 * 1024
#: Verified seals waiting for their blocks, in total and per actor. Each pending seal is
#: re-checked when blocks of its actor arrive; 100,000 of them made every batch take a
#: second. An honest actor has a handful in flight; beyond the limits seals are refused and
#: sent again by sync.
MAX_PENDING_SEALS = 4096
MAX_PENDING_SEALS_PER_ACTOR = 64
Verify = Callable[[bytes, bytes, bytes], bool]


@dataclass
class ApplyResult:
    """What `apply_envelopes` did with a batch."""

    new: int = 0                 # blocks applied now (including earlier pending ones)
    duplicates: int = 0          # already known blocks or seals
    pending: int = 0             # blocks waiting for parents, predecessors or seals
    seals: int = 0               # seals newly verified
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, reason)
    changed_docs: list[tuple[str, str]] = field(default_factory=list)
    new_seals: list[bytes] = field(default_factory=list)  # seal bytes newly stored, in order
    held: int = 0                # blocks held back: stamped too far ahead of our clock
    equivocations: list[Equivocation] = field(default_factory=list)


class CausalDelivery(SealSlots):
    """Admission to the pending buffer, seal resolution and the causal drain (state lives in
    Replica.__init__)."""

    verify: Verify | None
    max_pending_blocks: int
    max_pending_bytes: int
    max_unsealed_bytes_per_actor: int
    max_pending_seals: int
    _pending_seal_count: int
    _pending_seals: dict[bytes, list[Seal]]

    def _apply(self, cid: bytes, data: bytes, ch: Change, state: DocState | None = None,
               side: bool = False) -> None:
        raise NotImplementedError  # Replica's

    def _check_links(self, ch: Change) -> str | None:
        """Parents must be blocks of the same document and the height must follow from them."""
        top = 0
        for parent in ch.parents:
            info = self.info[parent]
            if info.collection != ch.collection or info.doc_id != ch.doc_id:
                return "parent belongs to another document"
            top = max(top, info.height)
        if ch.height != top + 1:
            return "height is not 1 + the highest parent height"
        return None

    def _drain(self, work: list[bytes], result: ApplyResult) -> None:
        while work:
            cid = work.pop()
            p = self._pending.get(cid)
            if p is None or not self._ready(cid, p):
                continue
            self._drop_pending(cid)
            ch = p.change
            problem = self._check_links(ch)
            if problem:
                result.rejected.append((-1, f"block {cidlib.format_cid(cid)}: {problem}"))
                continue
            self._apply(cid, p.data, ch, side=p.side)
            if not p.side:
                # Other blocks claiming the same (actor, seq) can never enter the log now:
                # keep them only as possible proof of an equivocation.
                for other in list(self._pending_by_seq.get((ch.actor, ch.seq), ())):
                    self._keep_conflict(other, self._drop_pending(other))
            result.new += 1
            result.changed_docs.append((ch.collection, ch.doc_id))
            nxt = self._pending_by_seq.get((ch.actor, ch.seq + 1))
            if nxt:
                work.extend(nxt)
            waiting = self._waiting_parent.pop(cid, None)
            if waiting:
                work.extend(waiting)

    def _admit(self, i: int, cid: bytes, ch: Change, payload: bytes, result: ApplyResult) -> bool:
        """Take a new block into the pending buffer (or the conflict store); False if refused."""
        actor, seq = ch.actor, ch.seq
        q = self.quarantined.get(actor)
        if seq <= self.seq_of(actor) or (q is not None and seq >= q):
            self._keep_conflict(cid, _Pending(ch, payload))  # only a seal can make it count
            return False
        size = len(payload)
        if len(self._pending) >= self.max_pending_blocks or self._pending_bytes + size > self.max_pending_bytes:
            result.rejected.append((i, "pending buffer full"))
            return False
        covered = any(s.first <= seq <= s.last for s in self._pending_seals.get(actor, ()))
        if not covered and self._unsealed_bytes.get(actor, 0) + size > self.max_unsealed_bytes_per_actor:
            result.rejected.append((i, "pending buffer for this actor's unsealed blocks is full"))
            return False
        slot = self._pending_by_seq.get((actor, seq))
        if slot is not None and len(slot) >= MAX_SLOT_CANDIDATES:
            oldest = next((c for c in slot if c not in self._sealed_pending), None)
            if oldest is None:
                result.rejected.append((i, "too many candidates for one sequence slot"))
                return False
            self._drop_pending(oldest)
        self._add_pending(cid, _Pending(ch, payload))
        return True

    def apply_envelopes(self, envelopes: Iterable[bytes], *, trusted: bool = False,
                        strict: bool = True, wall_ms: int | None = None) -> ApplyResult:
        """Verify and merge envelopes (blocks and seals), in any order, any number of times.

        strict: a malformed envelope raises CorruptBlockError before anything of the batch
        is applied. Otherwise malformed items are reported in `result.rejected` and skipped.
        trusted: the records come from our own storage (seal signatures were verified when
        received; seal digests are still checked against the blocks).
        wall_ms: the receiver's wall clock, bounding the accepted clock skew (held blocks
        whose time has come are applied now).
        """
        if wall_ms is not None:
            self.set_wall(wall_ms)
        result = ApplyResult()
        decoded: list[tuple[int, int, bytes, Change | Seal]] = []
        for i, env in enumerate(envelopes):
            try:
                kind, payload = open_envelope(env)
                obj = decode_change(payload, trusted=trusted) if kind == KIND_BLOCK else decode_seal(payload)
            except CorruptBlockError as exc:
                if strict:
                    raise CorruptBlockError(f"envelope {i}: {exc}") from None
                result.rejected.append((i, str(exc)))
                continue
            decoded.append((i, kind, payload, obj))
        work: list[bytes] = []
        limit = self._limit()
        if self._held and limit is not None:
            for c in [c for c in self._held if self._pending[c].change.hlc <= limit]:
                del self._held[c]
                work.append(c)
        touched: set[bytes] = set()
        for i, kind, payload, obj in decoded:
            if kind == KIND_SEAL:
                seal: Seal = obj  # type: ignore[assignment]
                if seal.content in self._seal_keys:
                    result.duplicates += 1
                elif not trusted and self.verify is not None and not seal.verify(self.verify):
                    result.rejected.append((i, "seal signature does not verify"))
                elif not trusted and self._seals_full(seal.actor) and (
                        not self._resolve_seals(result, {seal.actor}) or self._seals_full(seal.actor)):
                    # Full: first the actor's waiting seals are matched against the blocks
                    # admitted so far (an honest batch sends each seal right after its
                    # blocks, so a batch of many flushes resolves as it goes).
                    result.rejected.append((i, "too many seals waiting for their blocks"))
                else:
                    if not trusted:
                        self._check_overlap(seal, payload)
                    self._pending_seals.setdefault(seal.actor, []).append(seal)
                    self._pending_seal_count += 1
                    self._seal_keys.add(seal.content)
                    touched.add(seal.actor)
                continue
            cid = cidlib.compute(payload)
            ch: Change = obj  # type: ignore[assignment]
            if cid in self.blocks or cid in self._pending or cid in self._conflict:
                result.duplicates += 1
                slot = self._pending_by_seq.get((ch.actor, ch.seq))
                if slot is not None and cid in slot and slot[-1] != cid:
                    slot.remove(cid)  # re-sent: the newest candidate is tried first
                    slot.append(cid)
                continue
            touched.add(ch.actor)
            if self._admit(i, cid, ch, payload, result):
                work.append(cid)
        self._trusting = trusted
        try:
            self._resolve_seals(result, touched)
            work.extend(self._sealed_pending)
            # Lowest sequence numbers first (popped from the end), so chains drain in one pass.
            pending = self._pending
            # (seq, cid): a total order. Set iteration order follows hash(), which differs in
            # Pyodide, so ties must never be left to it (it changed apply order across runtimes).
            work.sort(key=lambda c: (pending[c].change.seq if c in pending else 0, c), reverse=True)
            self._drain(work, result)
            # Newly applied blocks may complete seal ranges whose later blocks are pending.
            while self._resolve_seals(result, None):
                work = sorted(self._sealed_pending, key=lambda c: (pending[c].change.seq, c), reverse=True)
                self._drain(work, result)
        finally:
            self._trusting = False
        result.pending = len(self._pending)
        result.held = len(self._held)
        result.equivocations.extend(self._new_equivocations)
        self._new_equivocations.clear()
        return result

    def _seals_full(self, actor: bytes) -> bool:
        """No room for another seal waiting for its blocks (in all, or of `actor`)."""
        return self._pending_seal_count >= self.max_pending_seals or len(
            self._pending_seals.get(actor, ())) >= MAX_PENDING_SEALS_PER_ACTOR

    def _resolve_seals(self, result: ApplyResult, actors: set[bytes] | None) -> bool:
        """Retry the pending seals of `actors` (None: of every actor that has some)."""
        progressed = False
        for actor in sorted(self._pending_seals if actors is None else actors & self._pending_seals.keys()):
            keep = []
            for seal in self._pending_seals[actor]:
                before = result.seals
                if not self._try_seal(seal, seal.encode(), result):
                    keep.append(seal)
                elif result.seals > before:
                    progressed = True
            self._pending_seal_count -= len(self._pending_seals[actor]) - len(keep)
            if keep:
                self._pending_seals[actor] = keep
            else:
                del self._pending_seals[actor]
        return progressed

    def unresolved_seals(self) -> list[Seal]:
        """Verified seals still waiting for (or contradicted by) the blocks they name."""
        return [s for a in sorted(self._pending_seals) for s in self._pending_seals[a]]
