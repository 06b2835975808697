"""The replica: every block it knows, per-document CRDT state, per-actor logs and seals.

Pure: time arrives as `wall_ms` arguments, signing and verification as callables.

Delivery is causal. A received block is applied once (1) its actor's previous sequence
number is applied, (2) all its parents are applied, and (3) if signatures are required, a
verified seal of its actor covers it. Until then it waits in a bounded pending buffer. So
the per-actor logs are always gap-free (a version vector describes them exactly) and every
document DAG is closed under parents (history and time travel never meet a hole).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple

from . import cid as cidlib
from . import clock as hlc
from .block import (KIND_BLOCK, KIND_SEAL, MAX_BLOCK_BYTES, MAX_PARENTS, Change, Seal, batch_digest,
                    decode_change, decode_seal, envelope, make_seal, open_envelope)
from .clock import HybridClock
from .errors import CorruptBlockError, HistoryPrunedError, ValidationError
from .state import DocState

#: Blocks waiting for a parent, a predecessor or a seal. Bounds what a peer can make us
#: hold; anything beyond is refused and will be asked for again by sync gap detection.
MAX_PENDING_BLOCKS = 200_000
#: Blocks covered by one seal. A receiver must hold a whole sealed range before applying
#: any of it, so this bounds its pending buffer per actor and keeps frames streamable.
MAX_SEAL_BLOCKS = 1000
#: Combinations of pending candidates (several blocks claiming one actor+seq) tried against
#: a seal's digest. Honest traffic has one candidate per seq; this bounds the hashing a
#: flood of forged blocks can cause while still finding the real block among a few fakes.
MAX_SEAL_CANDIDATE_COMBOS = 64

Verify = Callable[[bytes, bytes, bytes], bool]
Sign = Callable[[bytes], bytes]


class BlockInfo(NamedTuple):
    """Where an applied block belongs, kept per CID (`Replica.info`)."""

    collection: str
    doc_id: str
    actor: bytes
    seq: int
    index: int        # position in apply order (`Replica.order`)
    height: int       # the block's height in its document's DAG


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


class _Pending:
    __slots__ = ("change", "data")

    def __init__(self, change: Change, data: bytes) -> None:
        self.change = change
        self.data = data


class Replica:
    def __init__(self, actor: bytes, *, require_signatures: bool = True,
                 verify: Verify | None = None,
                 max_pending_blocks: int = MAX_PENDING_BLOCKS) -> None:
        if type(actor) is not bytes or len(actor) != 32:
            raise ValidationError("actor must be a 32-byte Ed25519 public key")
        if require_signatures and verify is None:
            raise ValidationError("require_signatures needs a verify function")
        self.actor = actor
        self.require_signatures = require_signatures
        self.verify = verify
        self.max_pending_blocks = max_pending_blocks
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
        self._seal_keys: set[bytes] = set()             # seal bytes seen (dedupe)
        self._trusting = False                          # replaying our own storage
        # Blocks whose bodies compaction dropped (prune_before): their CIDs, links and seals
        # stay known, so state, DAG and seal digests remain verifiable; the bodies do not.
        self.pruned: set[bytes] = set()
        self.checkpoint: dict | None = None
        self.own_durable: int | None = None   # set by the driver after each durable flush

    # ------------------------------------------------------------ reading

    def doc(self, collection: str, doc_id: str) -> DocState | None:
        col = self.collections.get(collection)
        return None if col is None else col.get(doc_id)

    def seq_of(self, actor: bytes) -> int:
        log = self.by_actor.get(actor)
        return 0 if log is None else len(log)

    def servable(self, actor: bytes) -> int:
        """Highest seq of `actor` we can send: sealed for us, applied for others."""
        if actor == self.actor:
            # Our own blocks: sealed *and* durable (the driver sets own_durable after a
            # successful storage flush), so a peer never holds what we could lose.
            durable = self.seq_of(actor) if self.own_durable is None else self.own_durable
            return min(self.sealed_upto.get(actor, 0), durable)
        if self.require_signatures:
            return min(self.sealed_upto.get(actor, 0), self.seq_of(actor))
        return self.seq_of(actor)

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
        return self.seq_of(self.actor) - self.sealed_upto.get(self.actor, 0)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------ local writes

    def commit(self, collection: str, doc_id: str, ops: list, wall_ms: int,
               schema: bytes | None = None) -> tuple[bytes, bytes, DocState]:
        """Make, apply and return (cid, block bytes, doc state) for a local change.

        `ops` must already be validated (field names checked, values canonical).
        """
        docs = self.collections.get(collection)
        state = None if docs is None else docs.get(doc_id)
        # A new DocState is registered only once the block is built: a write refused below
        # (e.g. a lone surrogate in a field name, an oversized block) used to leave an empty
        # document behind, visible to get() and state_hash().
        fresh = state is None
        if fresh:
            state = DocState(collection, doc_id)
        parents = tuple(sorted(state.heads))
        if len(parents) > MAX_PARENTS:  # merge wide fans in steps is future work; refuse loudly
            raise ValidationError(f"document has more than {MAX_PARENTS} concurrent heads")
        ch = Change(collection, doc_id, parents, state.height + 1, self.actor,
                    self.seq_of(self.actor) + 1, self.clock.now(wall_ms), tuple(ops), schema)
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

    def seal_local(self, sign: Sign) -> list[bytes]:
        """Seal every unsealed local block (in ranges of MAX_SEAL_BLOCKS); returns seal bytes."""
        out = []
        log = self.by_actor.get(self.actor, [])
        start = self.sealed_upto.get(self.actor, 0)
        while start < len(log):
            end = min(len(log), start + MAX_SEAL_BLOCKS)
            seal = make_seal(self.actor, start + 1, log[start:end], sign)
            data = seal.encode()
            self._store_seal(seal, data)
            out.append(data)
            start = end
        return out

    # ------------------------------------------------------------ merge

    def _apply(self, cid: bytes, data: bytes, ch: Change, state: DocState | None = None) -> None:
        if state is None:
            docs = self.collections.get(ch.collection)
            if docs is None:
                docs = self.collections[ch.collection] = {}
            state = docs.get(ch.doc_id)
            if state is None:
                state = docs[ch.doc_id] = DocState(ch.collection, ch.doc_id)
        state.apply(cid, ch)
        self.blocks[cid] = data
        self.info[cid] = BlockInfo(ch.collection, ch.doc_id, ch.actor, ch.seq, len(self.order), ch.height)
        self.order.append(cid)
        log = self.by_actor.get(ch.actor)
        if log is None:
            log = self.by_actor[ch.actor] = []
        log.append(cid)
        self.clock.observe(ch.hlc)

    def _store_seal(self, seal: Seal, data: bytes) -> None:
        self._seal_keys.add(data)
        self.seals.setdefault(seal.actor, []).append((seal.first, seal.last, data))
        self.seals[seal.actor].sort()
        if seal.first <= self.sealed_upto.get(seal.actor, 0) + 1:
            upto = max(self.sealed_upto.get(seal.actor, 0), seal.last)
            # Later seals may already be stored (received out of order): extend through them.
            for f, l, _ in self.seals[seal.actor]:
                if f <= upto + 1 and l > upto:
                    upto = l
            self.sealed_upto[seal.actor] = upto

    def _candidates_at(self, actor: bytes, seq: int) -> tuple[list[bytes], bool]:
        """(cids that may be `actor`'s block at `seq`, whether that is settled by our log)."""
        log = self.by_actor.get(actor)
        if log is not None and seq <= len(log):
            return [log[seq - 1]], True
        return self._pending_by_seq.get((actor, seq), []), False

    def _try_seal(self, seal: Seal, data: bytes, result: ApplyResult) -> bool:
        """Check a verified seal against the blocks it names; True once it is resolved.

        Blocks are not signed one by one, so anybody can send an unsealed block claiming
        (actor, seq). Several pending candidates for one seq are therefore tried (bounded),
        and the candidates the seal rules out are dropped. Previously the first candidate
        received was the only one tried, and a mismatch rejected the seal for good: one
        forged block stalled the real actor's data on this replica forever.
        """
        options: list[list[bytes]] = []
        settled = True
        combos = 1
        for seq in range(seal.first, seal.last + 1):
            cands, fixed = self._candidates_at(seal.actor, seq)
            if not cands:
                return False  # wait for the rest of the range
            settled = settled and fixed
            combos *= len(cands)
            options.append(cands)
        cids = None
        if combos == 1:
            attempt = [o[0] for o in options]
            if batch_digest(attempt) == seal.digest:
                cids = attempt
        elif combos <= MAX_SEAL_CANDIDATE_COMBOS:
            for attempt in itertools.product(*options):
                if batch_digest(attempt) == seal.digest:
                    cids = list(attempt)
                    break
        if cids is None:
            if settled:  # every block of the range is applied: the seal contradicts our log
                result.rejected.append((-1, f"seal {seal.first}..{seal.last} does not match the blocks it covers"))
                return True
            return False  # a pending candidate may be a forgery: wait for the real block
        self._store_seal(seal, data)
        result.seals += 1
        result.new_seals.append(data)
        for seq, c in zip(range(seal.first, seal.last + 1), cids):
            for other in list(self._pending_by_seq.get((seal.actor, seq), ())):
                if other != c:
                    self._drop_pending(other)  # contradicts the actor's signed seal
            if c in self._pending:
                self._sealed_pending.add(c)
        return True

    def _ready(self, cid: bytes, p: _Pending) -> bool:
        ch = p.change
        if ch.seq != self.seq_of(ch.actor) + 1:
            return False
        for parent in ch.parents:
            if parent not in self.blocks:
                self._waiting_parent.setdefault(parent, {})[cid] = None
                return False
        if self.require_signatures and not self._trusting and cid not in self._sealed_pending:
            return False
        return True

    def _drop_pending(self, cid: bytes) -> _Pending:
        p = self._pending.pop(cid)
        key = (p.change.actor, p.change.seq)
        cands = self._pending_by_seq.get(key)
        if cands is not None:
            cands.remove(cid)
            if not cands:
                del self._pending_by_seq[key]
        self._sealed_pending.discard(cid)
        return p

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
            self._apply(cid, p.data, ch)
            # Other blocks claiming the same (actor, seq) can never apply now: drop them
            # rather than let them sit in the pending buffer forever.
            for other in list(self._pending_by_seq.get((ch.actor, ch.seq), ())):
                self._drop_pending(other)
            result.new += 1
            result.changed_docs.append((ch.collection, ch.doc_id))
            nxt = self._pending_by_seq.get((ch.actor, ch.seq + 1))
            if nxt:
                work.extend(nxt)
            waiting = self._waiting_parent.pop(cid, None)
            if waiting:
                work.extend(waiting)

    def apply_envelopes(self, envelopes: Iterable[bytes], *, trusted: bool = False,
                        strict: bool = True) -> ApplyResult:
        """Verify and merge envelopes (blocks and seals), in any order, any number of times.

        strict: a malformed envelope raises CorruptBlockError before anything of the batch
        is applied. Otherwise malformed items are reported in `result.rejected` and skipped.
        trusted: the records come from our own storage (seals were verified when received).
        """
        result = ApplyResult()
        decoded: list[tuple[int, int, bytes, object]] = []
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
        seals: list[tuple[int, Seal, bytes]] = []
        for i, kind, payload, obj in decoded:
            if kind == KIND_SEAL:
                if payload in self._seal_keys:
                    result.duplicates += 1
                elif not trusted and self.verify is not None and not obj.verify(self.verify):
                    result.rejected.append((i, "seal signature does not verify"))
                else:
                    seals.append((i, obj, payload))
                continue
            cid = cidlib.compute(payload)
            if cid in self.blocks or cid in self._pending:
                result.duplicates += 1
                continue
            ch: Change = obj
            have = self.seq_of(ch.actor)
            if ch.seq <= have:
                result.rejected.append((i, f"equivocation: actor already has a different block at seq {ch.seq}"))
                continue
            if len(self._pending) >= self.max_pending_blocks:
                result.rejected.append((i, "pending buffer full"))
                continue
            self._pending[cid] = _Pending(ch, payload)
            self._pending_by_seq.setdefault((ch.actor, ch.seq), []).append(cid)
            work.append(cid)
        for i, seal, payload in seals:
            if trusted:
                self._store_seal(seal, payload)
                result.seals += 1
                result.new_seals.append(payload)
            else:
                self._pending_seals.setdefault(seal.actor, []).append(seal)
                self._seal_keys.add(payload)
        self._trusting = trusted
        try:
            self._resolve_seals(result)
            work.extend(self._sealed_pending)
            # Lowest sequence numbers first (popped from the end), so chains drain in one pass.
            pending = self._pending
            # (seq, cid): a total order. Set iteration order follows hash(), which differs in
            # Pyodide, so ties must never be left to it (it changed apply order across runtimes).
            work.sort(key=lambda c: (pending[c].change.seq if c in pending else 0, c), reverse=True)
            self._drain(work, result)
            # Newly applied blocks may complete seal ranges whose later blocks are pending.
            while self._resolve_seals(result):
                work = sorted(self._sealed_pending, key=lambda c: (pending[c].change.seq, c), reverse=True)
                self._drain(work, result)
        finally:
            self._trusting = False
        result.pending = len(self._pending)
        return result

    def _resolve_seals(self, result: ApplyResult) -> bool:
        progressed = False
        for actor in list(self._pending_seals):
            keep = []
            for seal in self._pending_seals[actor]:
                if seal.last <= self.sealed_upto.get(actor, 0) and seal.first > 0 and self._all_applied(seal):
                    continue
                before = result.seals
                if not self._try_seal(seal, seal.encode(), result):
                    keep.append(seal)
                elif result.seals > before:
                    progressed = True
            if keep:
                self._pending_seals[actor] = keep
            else:
                del self._pending_seals[actor]
        return progressed

    def _all_applied(self, seal: Seal) -> bool:
        return self.seq_of(seal.actor) >= seal.last

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
        wanted.sort(key=lambda c: index[c].index)
        out: list[bytes] = []
        emitted_seals: set[bytes] = set()
        last_of_range: dict[tuple[bytes, int], list[bytes]] = {}
        for actor, seals in self.seals.items():
            have = vector.get(actor, 0)
            for f, l, data in seals:
                if l > have:
                    last_of_range.setdefault((actor, min(l, self.servable(actor))), []).append(data)
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
        return out

    def new_blocks(self, count: int) -> list[bytes]:
        """Block bytes of the last `count` applied blocks, in apply order (what a merge just
        added, for the write sink to persist)."""
        if count <= 0:
            return []
        return [self.blocks[c] for c in self.order[len(self.order) - count:]]

    def add_trusted_seal(self, data: bytes) -> None:
        """Store a seal read back from our own storage or snapshot (verified when received)."""
        if data not in self._seal_keys:
            self._store_seal(decode_seal(data), data)

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
        frontier = set()
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
