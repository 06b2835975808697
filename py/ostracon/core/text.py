"""A sequence CRDT for collaborative text (pure, deterministic).

Algorithm: YjsMod / FugueMax — the YATA item model (every inserted character remembers the
character to its left and to its right at insertion time, its *origins*) with the modified
conflict scan of Gentle's reference-crdts, which Weidner & Kleppmann ("The Art of the Fugue",
2023) show equals FugueMax: *maximally non-interleaving*. Two people typing concurrently at one
spot keep their words apart, forwards and backwards (plain RGA interleaves backward typing,
plain YATA mis-orders some three-way cases). It needs no tombstone garbage of its own beyond
deleted characters' ids, and runs of characters typed left to right by one actor share their
origins, so they are stored and sent as one *run* (run-length encoding).

Identity: a character is (actor, counter); every actor numbers the characters it inserts into
one text field 0, 1, 2, ... Concurrent inserts whose origins are equal are ordered by actor
bytes (then counter), never by hash() or set order. Deletes are tombstones: a deleted run keeps
its ids and origins and drops its characters.

Positions are Unicode code points (a Python `str` index). Surrogate pairs cannot be split:
Python strings hold code points, and lone surrogates are refused on input.

Structure: the runs in document order live in *chunks* (lists of at most MAX_CHUNK_RUNS runs
with their visible length). Position lookup walks chunk lengths from a finger (the last chunk
visited, with its start position), so an editing session — edits near the previous edit — costs
O(1) chunk steps plus a scan inside one chunk. An id index (per actor, runs sorted by counter)
finds a run by id with bisect. The materialized string is cached until the next change.

Local edits are applied at once; `take_batch()` returns what changed since the previous call,
encoded compactly (core/textcodec.py). Characters inserted and deleted inside one batch are
sent as ids and origins without their characters. Applying a batch whose inserts are already
known (a replica's own block coming back) is a no-op, so a local replica applies its own block
after having shown the edits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .actors import check_actor
from .errors import ValidationError
from .limits import MAX_TEXT_SCAN_RUNS
from .textruns import NONE, Chunk, IdIndex, Run

#: Runs per chunk before it splits. Position lookup scans one chunk linearly and walks chunks
#: from the finger: 64 keeps both short for documents of up to a few hundred thousand runs.
MAX_CHUNK_RUNS = 64
#: Largest character counter (and position): exact in a JavaScript number, so the browser
#: side can carry every id without big integers.
MAX_COUNTER = 2**53 - 1
#: Bytes of a seed's source (a binary CID: version, codec and multihash varints, sha2-256
#: digest: 38 bytes); 64 leaves room for longer multihashes and refuses anything else.
MAX_SEED_SOURCE = 64

#: Edits (trace transactions / API calls) grouped into one block at most: an editing burst.
#: 1,000 keeps a block of typing far below MAX_BLOCK_BYTES and the per-block overhead
#: (parents, actor, stamps: ~150 bytes) under 1 byte per edit.
TEXT_BURST_OPS = 1000

#: Domain label of a seed's actor id (see `seed_actor`).
SEED_LABEL = b"ostracon/text-seed/v1\0"


def seed_actor(source: bytes, text: str) -> bytes:
    """The actor id of a *seed*: the initial content `text` a field's earlier plain string
    value (written by the block whose CID bytes are `source`) gives its text.

    sha256(SEED_LABEL || len(source) as 1 byte || source || text as UTF-8). Every device that
    turns the same string value into a text computes the same id, and its characters are
    (seed, 0) .. (seed, n-1) with no origins, so two devices migrating one field concurrently
    insert the same characters once (the second seed is known already and skipped). A hash,
    so no seed id is ever a member's key."""
    return hashlib.sha256(SEED_LABEL + bytes([len(source)]) + source
                          + text.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position that survives edits: just before the character `(actor, counter)`, or the
    end of the text when `actor` is None. Resolve it with `TextCRDT.resolve`."""

    actor: bytes | None
    counter: int = 0


def check_text(s: object) -> str:
    """Text accepted for insertion: a str without lone surrogates (they have no UTF-8 form)."""
    if type(s) is not str:
        raise ValidationError(f"text must be a str, not {type(s).__name__}")
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("text contains a lone surrogate (not a Unicode scalar "
                                  "value)") from None
    return s


class TextCRDT:
    """One text field's replicated state. `actor` (an actor id, core/actors.py) is the local author of edits.

    The structure's members are public for core/textcodec.py (the wire and snapshot forms);
    everything else uses the methods."""

    def __init__(self, actor: bytes | None = None) -> None:
        self.actors: list[bytes] = []             # actor index -> key
        self.actor_ids: dict[bytes, int] = {}     # key -> actor index
        self.ids: list[IdIndex] = []             # per actor: its runs by counter
        self.next_ctr: list[int] = []             # per actor: next unused counter
        self.chunks: list[Chunk] = [Chunk([], 0)]
        self.length = 0                           # visible characters
        self.text_cache: str | None = ""          # the materialized text, None when stale
        self.me = NONE                            # actor index of the local author
        self.batch_start = 0                      # own counter when the open batch began
        self.batch_deletes: list[list[int]] = []  # [actor, counter, n] of older characters
        self.batch_seed: list | None = None       # [source, text] seeded in the open batch
        # Runs the conflict scans of the batch being applied may still visit (apply_batch
        # sets it to MAX_TEXT_SCAN_RUNS; -1 once exhausted).
        self.scan_budget = MAX_TEXT_SCAN_RUNS
        # Finger: the chunk last visited and its start position, a run in that chunk and its
        # start within the chunk (see _seek).
        self._fci = self._fst = self._fri = self._fro = 0
        if actor is not None:
            self.bind(actor)

    def restore(self, saved: TextCRDT) -> None:
        """Become `saved` (a deep copy of this CRDT taken earlier; it must not be used
        afterwards), keeping this object's identity for the handles that hold it (undoing
        an atomic batch, db/batch.py)."""
        self.__dict__.clear()
        self.__dict__.update(saved.__dict__)

    # ------------------------------------------------------------ actors and ids

    def actor_index(self, actor: bytes) -> int:
        i = self.actor_ids.get(actor)
        if i is None:
            i = self.actor_ids[actor] = len(self.actors)
            self.actors.append(actor)
            self.ids.append(IdIndex())
            self.next_ctr.append(0)
        return i

    def bind(self, actor: bytes) -> None:
        """Make `actor` the author of local edits (a new batch starts)."""
        check_actor(actor)
        self.me = self.actor_index(actor)
        self.batch_start = self.next_ctr[self.me]
        self.batch_deletes = []
        self.batch_seed = None

    def find_run(self, a: int, c: int) -> Run | None:
        """The run holding character (a, c), or None if unknown."""
        if a < 0 or a >= len(self.ids):
            return None
        return self.ids[a].find(c)

    def _split(self, r: Run, off: int, ri: int) -> Run:
        """Split run `r` (at index `ri` of its chunk) before offset `off`; return the right part."""
        s = r.s
        r2 = Run(r.a, r.c + off, r.n - off, r.a, r.c + off - 1, r.ra, r.rc,
                  None if s is None else s[off:], r.k)
        r.n = off
        if s is not None:
            r.s = s[:off]
        r.k.runs.insert(ri + 1, r2)
        self.ids[r.a].add(r2)
        return r2

    def _rebalance(self, ch: Chunk, ci: int = -1) -> None:
        """Split `ch` (index `ci` if known) while it holds more than MAX_CHUNK_RUNS runs."""
        if len(ch.runs) <= MAX_CHUNK_RUNS:
            return
        chunks = self.chunks
        if ci < 0 or chunks[ci] is not ch:
            ci = chunks.index(ch)
        runs = ch.runs
        half = len(runs) // 2
        moved = runs[half:]
        del runs[half:]
        new = Chunk(moved, 0)
        vis = 0
        for r in moved:
            r.k = new
            if r.s is not None:
                vis += r.n
        new.vis = vis
        ch.vis -= vis
        chunks.insert(ci + 1, new)
        if self._fci > ci:
            self._fci += 1
        elif self._fci == ci:
            self._fri = self._fro = 0

    # ------------------------------------------------------------ reading

    def __str__(self) -> str:
        if self.text_cache is None:
            self.text_cache = "".join([r.s for ch in self.chunks for r in ch.runs if r.s is not None])
        return self.text_cache

    def __len__(self) -> int:
        return self.length

    def _seek(self, pos: int) -> tuple[int, int, int]:
        """(chunk index, run index, offset) of the visible character at `pos` < length.

        Starts from the finger: the chunk last visited (`_fci`, starting at `_fst`) and a run
        in it (`_fri`, starting `_fro` visible characters into the chunk)."""
        chunks = self.chunks
        ci, st = self._fci, self._fst
        if ci >= len(chunks):
            ci, st = 0, 0
        ci0 = ci
        while pos < st:
            ci -= 1
            st -= chunks[ci].vis
        while True:
            v = chunks[ci].vis
            if pos < st + v:
                break
            st += v
            ci += 1
        p = pos - st
        runs = chunks[ci].runs
        if ci == ci0:
            ri, ro = self._fri, self._fro
            if p < ro:
                while p < ro:
                    ri -= 1
                    r = runs[ri]
                    if r.s is not None:
                        ro -= r.n
        else:
            ri = ro = 0
        self._fci, self._fst = ci, st
        while True:
            r = runs[ri]
            if r.s is not None:
                if p < ro + r.n:
                    self._fri, self._fro = ri, ro
                    return ci, ri, p - ro
                ro += r.n
            ri += 1

    def _index_of(self, r: Run) -> int:
        """Visible position of run `r`'s first character (or where it would be if deleted)."""
        pos = 0
        for ch in self.chunks:
            if ch is r.k:
                break
            pos += ch.vis
        for x in r.k.runs:
            if x is r:
                return pos
            if x.s is not None:
                pos += x.n
        raise AssertionError("run not in its chunk")  # pragma: no cover

    # ------------------------------------------------------------ local edits

    def insert(self, pos: int, text: str) -> None:
        """Insert `text` before code point `pos` (0 <= pos <= len). Raises ValidationError."""
        check_text(text)
        if type(pos) is not int or not 0 <= pos <= self.length:
            raise ValidationError(f"insert position {pos!r} outside 0..{self.length}")
        if text:
            self._insert(pos, text)

    def _insert(self, pos: int, text: str) -> None:
        me = self.me
        if me < 0:
            raise ValidationError("bind an actor before editing")
        k = len(text)
        ctr = self.next_ctr[me]
        if ctr + k > MAX_COUNTER:
            raise ValidationError("text field has used up its character counter")
        chunks = self.chunks
        if pos == self.length:
            ci = len(chunks) - 1
            ch = chunks[ci]
            self._fci, self._fst = ci, pos - ch.vis
            self._fri = self._fro = 0
            ri = len(ch.runs)
            left = ch.runs[-1] if ri else (chunks[ci - 1].runs[-1] if ci else None)
            ra = rc = NONE
            if left is not None:
                la, lc = left.a, left.c + left.n - 1
            else:
                la = lc = NONE
        else:
            ci, ri, off = self._seek(pos)
            ch = chunks[ci]
            r = ch.runs[ri]
            if off:
                r2 = self._split(r, off, ri)
                left = r
                ri += 1
                ra, rc = r2.a, r2.c
            else:
                ra, rc = r.a, r.c
                left = ch.runs[ri - 1] if ri else (chunks[ci - 1].runs[-1] if ci else None)
            if left is not None:
                la, lc = left.a, left.c + left.n - 1
            else:
                la = lc = NONE
        self.next_ctr[me] = ctr + k
        self.length += k
        self.text_cache = None
        if (left is not None and left.a == me and left.c + left.n == ctr and left.s is not None
                and left.ra == ra and left.rc == rc):
            left.s += text
            left.n += k
            left.k.vis += k
            if left.k is not ch:
                self._fst += k
            elif self._fri:
                self._fro += k
            return
        nr = Run(me, ctr, k, la, lc, ra, rc, text, ch)
        ch.runs.insert(ri, nr)
        ch.vis += k
        self.ids[me].add(nr)
        if len(ch.runs) > MAX_CHUNK_RUNS:
            self._rebalance(ch, ci)

    def delete(self, pos: int, n: int) -> None:
        """Delete `n` code points starting at `pos`. Raises ValidationError if out of range."""
        if type(pos) is not int or type(n) is not int or n < 0 or pos < 0 or pos + n > self.length:
            raise ValidationError(f"delete range {pos!r}+{n!r} outside 0..{self.length}")
        if n:
            self._delete(pos, n)

    def _delete(self, pos: int, n: int) -> None:
        me, bstart, dels = self.me, self.batch_start, self.batch_deletes
        if me < 0:
            raise ValidationError("bind an actor before editing")
        ci, ri, off = self._seek(pos)
        chunks = self.chunks
        ch = chunks[ci]
        touched = [(ch, ci)]
        left = n
        while left:
            if ri >= len(ch.runs):
                ci += 1
                ri = 0
                ch = chunks[ci]
                touched.append((ch, ci))
                continue
            r = ch.runs[ri]
            if r.s is None:
                ri += 1
                continue
            if off:
                r = self._split(r, off, ri)
                ri += 1
                off = 0
            if r.n > left:
                self._split(r, left, ri)
            m = r.n
            r.s = None
            ch.vis -= m
            left -= m
            ri += 1
            # Characters of the open batch are sent as dead inserts, not as deletes.
            old = m if r.a != me else min(m, bstart - r.c)
            if old > 0:
                if dels:
                    d = dels[-1]
                    if d[0] == r.a and d[1] == r.c + old:      # backspacing
                        d[1] = r.c
                        d[2] += old
                        continue
                    if d[0] == r.a and d[1] + d[2] == r.c:     # forward delete
                        d[2] += old
                        continue
                dels.append([r.a, r.c, old])
        self.length -= n
        self.text_cache = None
        for ch, ci in reversed(touched):
            self._rebalance(ch, ci)

    def splice(self, pos: int, n: int, text: str) -> None:
        """Delete `n` code points at `pos`, then insert `text` there."""
        check_text(text)
        self.delete(pos, n)
        if text:
            self._insert(pos, text)

    def seed(self, source: bytes, text: str) -> bool:
        """Add the seed `text` from the plain string value written by block `source` (see
        `seed_actor`), as part of the open batch. False if this seed is known already."""
        check_text(text)
        if type(source) is not bytes or not 0 < len(source) <= MAX_SEED_SOURCE:
            raise ValidationError("seed source must be a CID's bytes")
        if not text or self.batch_seed is not None:
            raise ValidationError("a batch carries at most one non-empty seed")
        a = self.actor_index(seed_actor(source, text))
        self.scan_budget = MAX_TEXT_SCAN_RUNS
        if not self.integrate(a, 0, len(text), NONE, NONE, NONE, NONE, text):
            return False
        self.batch_seed = [source, text]
        return True

    # ------------------------------------------------------------ cursors and blame

    def cursor(self, pos: int) -> Cursor:
        """A cursor just before code point `pos` (0 <= pos <= len) that follows later edits."""
        if type(pos) is not int or not 0 <= pos <= self.length:
            raise ValidationError(f"cursor position {pos!r} outside 0..{self.length}")
        if pos == self.length:
            return Cursor(None, 0)
        ci, ri, off = self._seek(pos)
        r = self.chunks[ci].runs[ri]
        return Cursor(self.actors[r.a], r.c + off)

    def resolve(self, cur: Cursor) -> int:
        """Current position of a cursor. A cursor at a deleted character moves to where that
        character was; an unknown id raises ValidationError."""
        if cur.actor is None:
            return self.length
        r = self.find_run(self.actor_ids.get(cur.actor, NONE), cur.counter)
        if r is None:
            raise ValidationError("cursor refers to a character this text does not know")
        return self._index_of(r) + (cur.counter - r.c if r.s is not None else 0)

    def blame(self) -> list[tuple[bytes, str]]:
        """The visible text as runs of (actor who inserted it, text), in document order."""
        out: list[list] = []
        actors = self.actors
        for ch in self.chunks:
            for r in ch.runs:
                if r.s is not None:
                    if out and out[-1][0] == r.a:
                        out[-1][1].append(r.s)
                    else:
                        out.append([r.a, [r.s]])
        return [(actors[a], "".join(parts)) for a, parts in out]

    # ------------------------------------------------------------ remote edits

    def integrate(self, a: int, c: int, n: int, la: int, lc: int, ra: int, rc: int,
                  s: str | None) -> bool:
        """Merge a run inserted by actor index `a` (YjsMod/FugueMax). False if it was skipped:
        its counters are not the actor's next ones (already known: our own block coming back;
        or a gap), an origin is unknown, or the conflict scan would pass `scan_budget` runs
        (core.limits.MAX_TEXT_SCAN_RUNS per batch). An actor's blocks arrive in sequence order
        everywhere, so every replica skips the same runs, and counters stay gap-free."""
        if c != self.next_ctr[a]:
            return False
        L = R = None
        if la != NONE:
            L = self.find_run(la, lc)
            if L is None:
                return False
        if ra != NONE and self.find_run(ra, rc) is None:
            return False
        self.next_ctr[a] = c + n
        if L is not None and lc < L.c + L.n - 1:
            self._split(L, lc - L.c + 1, L.k.runs.index(L))
        if ra != NONE:  # looked up after splitting L: both may be in one run
            R = self._run_of(ra, rc)
            if rc > R.c:
                R = self._split(R, rc - R.c, R.k.runs.index(R))
        chunks = self.chunks
        if L is None:
            ci, ri = 0, 0
        else:
            ci = chunks.index(L.k)
            ri = L.k.runs.index(L) + 1
        # The scan (reference-crdts' integrateYjsMod over runs): positions are
        # (chunk, run, offset) tuples, compared lexicographically.
        nch = len(chunks)
        lpos = (-1, 0, 0) if L is None else (ci, ri - 1, L.n - 1)
        rpos = (nch, 0, 0) if R is None else self._pos(R, R.c)
        if rpos <= lpos:
            # Every replica orders known characters alike, so this refuses the same (hostile)
            # runs everywhere: an origin-right that is not right of the origin-left.
            self.next_ctr[a] = c
            return False
        me_key = (self.actors[a], c)
        budget = self.scan_budget
        dci, dri = ci, ri
        scanning = False
        while True:
            if ri >= len(chunks[ci].runs):
                if ci + 1 < nch:
                    ci, ri = ci + 1, 0
                    continue
            if not scanning:
                dci, dri = ci, ri
            if ri >= len(chunks[ci].runs):
                break  # document end
            o = chunks[ci].runs[ri]
            if o is R:
                break
            budget -= 1
            if budget < 0:
                # Origins this far apart only come from a hostile writer: refuse the run
                # (and, in apply_batch, the rest of its batch) as if an origin were unknown.
                self.scan_budget = -1
                self.next_ctr[a] = c
                return False
            oleft = (-1, 0, 0) if o.la == NONE else self._pos(self._run_of(o.la, o.lc), o.lc)
            if oleft < lpos:
                break
            if oleft == lpos:
                oright = (nch, 0, 0) if o.ra == NONE else self._pos(self._run_of(o.ra, o.rc), o.rc)
                if oright < rpos:
                    scanning = True
                elif oright == rpos:
                    if me_key < (self.actors[o.a], o.c):
                        break
                    scanning = False
                else:
                    scanning = False
            ri += 1
        self.scan_budget = budget
        ch = chunks[dci]
        prev = ch.runs[dri - 1] if dri else None
        self._fci = self._fst = self._fri = self._fro = 0
        if s is not None:
            self.length += n
            self.text_cache = None
        if (prev is not None and s is not None and prev.s is not None and prev.a == a
                and prev.c + prev.n == c and la == a and lc == c - 1
                and prev.ra == ra and prev.rc == rc):
            prev.s += s
            prev.n += n
            ch.vis += n
            return True
        nr = Run(a, c, n, la, lc, ra, rc, s, ch)
        ch.runs.insert(dri, nr)
        if s is not None:
            ch.vis += n
        self.ids[a].add(nr)
        self._rebalance(ch, dci)
        return True

    def _run_of(self, a: int, c: int) -> Run:
        """The run of a character that must exist (an origin of an integrated run)."""
        r = self.find_run(a, c)
        if r is None:
            raise AssertionError("an origin of an integrated run is unknown")  # pragma: no cover
        return r

    def _pos(self, r: Run, c: int) -> tuple[int, int, int]:
        ch = r.k
        return (self.chunks.index(ch), ch.runs.index(r), c - r.c)

    def delete_ids(self, a: int, c: int, n: int) -> None:
        """Mark characters (a, c) .. (a, c+n-1) deleted; unknown ids are ignored."""
        lo, end = c, c + n
        if a < 0 or a >= len(self.ids):
            return
        ids = self.ids[a]
        touched = []
        while c < end:
            r = ids.next_from(c)
            if r is None or r.c >= end:
                break
            c = r.c + r.n
            if r.s is None:
                continue
            if r.c < lo:
                r = self._split(r, lo - r.c, r.k.runs.index(r))
            if r.c + r.n > end:
                self._split(r, end - r.c, r.k.runs.index(r))
            c = r.c + r.n
            r.s = None
            r.k.vis -= r.n
            self.length -= r.n
            self.text_cache = None
            touched.append(r.k)
        if touched:
            self._fci = self._fst = self._fri = self._fro = 0
            for ch in touched:
                self._rebalance(ch)

    # ------------------------------------------------------------ batches

    def take_batch(self) -> list | None:
        """The local edits since the previous call as a batch payload, or None if none."""
        from .textcodec import encode_batch
        out = encode_batch(self)
        self.batch_start = self.next_ctr[self.me] if self.me >= 0 else 0
        self.batch_deletes = []
        self.batch_seed = None
        return out

    def apply_batch(self, actor: bytes, payload: Any) -> None:
        """Merge a batch made by `actor`. Raises ValidationError if it is malformed."""
        from .textcodec import apply_batch
        apply_batch(self, actor, payload)

    def has_pending(self) -> bool:
        return self.me >= 0 and (self.next_ctr[self.me] > self.batch_start
                                 or bool(self.batch_deletes) or self.batch_seed is not None)
