"""Wire and snapshot forms of the text CRDT (core/text.py). Pure; decoders raise ValidationError.

Batch (the payload of a block's text op `["t", field, payload]`), a msgpack array
`[actors, ints, text]`:
- `actors`: the other actors the batch refers to (actor ids as bins, distinct, not the block's
  actor). Reference 0 is the block's actor, reference k is `actors[k-1]`.
- `ints`: non-negative ints: `start, n_inserts`, then `n_inserts` insert records, then delete
  records until the end.
  - insert record: `h, n, [left], [right]`. `h = dead | left_mode << 1 | right_mode << 3`. The
    record inserts characters (block actor, ctr) .. (ctr + n - 1), where ctr starts at `start`
    and continues after the previous record. dead = 1: they were deleted in the same batch and
    carry no text. left_mode 0: document start, 1: the block actor's character ctr - 1,
    2: explicit `ref, c`. right_mode 0: document end, 1: the origin-right of the left origin,
    2: the character after the left origin (left + 1), 3: explicit `ref, c`. An explicit id of
    the block actor is sent as `ctr - 1 - c` (it is older than ctr), another actor's as `c`.
  - delete record: `ref, zigzag(c - previous c), n`: delete (actor, c) .. (c + n - 1); the
    first previous c is the counter after the batch's last insert.
- `text`: the characters of the live inserts, concatenated in record order.
- optional 4th element `seed = [source, text]`: the field's earlier plain string value
  `text`, written by the block with CID bytes `source`, becomes initial content owned by
  the seed actor `core.text.seed_actor(source, text)` (applied before the inserts, which may
  name its characters as origins). Devices seeding the same value add it once.

State (snapshots), msgpack array `[1, actors, a, c, n, dead, la, lc, ra, rc, text]`: actors
sorted bytewise; then one column per run field, runs in document order and maximally merged,
so equal states encode to equal bytes whatever order the edits arrived in.
"""

from __future__ import annotations

from array import array
from itertools import accumulate
from typing import Any

import msgpack

from .actors import is_actor
from .errors import ValidationError
from .limits import MAX_TEXT_SCAN_RUNS
from .text import MAX_CHUNK_RUNS, MAX_COUNTER, MAX_SEED_SOURCE, TextCRDT, check_text, seed_actor
from .textruns import NONE, Chunk, Run

#: Other actors one batch may refer to (origins and deletes). A burst of editing touches the
#: text of a handful of co-authors; this bounds the table a hostile block can make us build.
MAX_BATCH_ACTORS = 4096
STATE_FORMAT = 1
_INT = int


def _zig(v: int) -> int:
    return v * 2 if v >= 0 else -v * 2 - 1


def _unzig(v: int) -> int:
    return v >> 1 if not v & 1 else -((v + 1) >> 1)


def encode_batch(t: TextCRDT) -> list | None:
    me = t.me
    if me < 0:
        return None
    bstart, end = t.batch_start, t.next_ctr[me]
    if bstart == end and not t.batch_deletes and t.batch_seed is None:
        return None
    refs: dict[int, int] = {}
    foreign: list[bytes] = []

    def ref(a: int) -> int:
        if a == me:
            return 0
        k = refs.get(a)
        if k is None:
            foreign.append(t.actors[a])
            k = refs[a] = len(foreign)
        return k

    ints = [bstart, 0]
    texts: list[str] = []
    count = 0
    ids = t.ids[me]
    pos = bstart
    while pos < end:
        r = ids.next_from(pos)
        if r is None:
            break
        pos = r.c + r.n
        st = max(r.c, bstart)
        n = r.c + r.n - st
        if st > r.c:
            la, lc = me, st - 1
        else:
            la, lc = r.la, r.lc
        ra, rc = r.ra, r.rc
        dead = r.s is None
        if la == NONE:
            lmode = 0
        elif la == me and lc == st - 1:
            lmode = 1
        else:
            lmode = 2
        if ra == NONE:
            rmode = 0
        elif lmode and (ra, rc) == _origin_right(t, la, lc):
            rmode = 1
        elif lmode and ra == la and rc == lc + 1:
            rmode = 2
        else:
            rmode = 3
        ints.append(dead | lmode << 1 | rmode << 3)
        ints.append(n)
        if lmode == 2:
            ints.append(ref(la))
            ints.append(st - 1 - lc if la == me else lc)
        if rmode == 3:
            ints.append(ref(ra))
            ints.append(st - 1 - rc if ra == me else rc)
        if r.s is not None:
            texts.append(r.s if st == r.c else r.s[st - r.c:])
        count += 1
    ints[1] = count
    prev = end
    for a, c, n in t.batch_deletes:
        ints.append(ref(a))
        ints.append(_zig(c - prev))
        ints.append(n)
        prev = c
    if t.batch_seed is not None:
        return [foreign, ints, "".join(texts), list(t.batch_seed)]
    return [foreign, ints, "".join(texts)]


def empty_batch(t: TextCRDT) -> list:
    """A batch with no edits: it still makes its field show the text (an LWW write)."""
    return [[], [t.next_ctr[t.me] if t.me >= 0 else 0, 0], ""]


def _origin_right(t: TextCRDT, a: int, c: int) -> tuple[int, int]:
    r = t.find_run(a, c)
    return (NONE, NONE) if r is None else (r.ra, r.rc)


def parse_seed(seed: Any) -> tuple[bytes, str]:
    """Check a batch's seed `[source, text]` (see the module docstring)."""
    if type(seed) is not list or len(seed) != 2:
        raise ValidationError("text seed must be [source, text]")
    source, text = seed
    if type(source) is not bytes or not 0 < len(source) <= MAX_SEED_SOURCE:
        raise ValidationError("text seed source must be a CID's bytes")
    check_text(text)
    if not text or len(text) > MAX_COUNTER:
        raise ValidationError("text seed must be a non-empty text")
    return source, text


def parse_batch(payload: Any, actor: bytes) -> tuple[list[bytes], list[tuple], list[tuple]]:
    """Check a batch payload strictly; return (foreign actors, inserts, deletes).

    inserts: (c, n, lref, lc, rmode, rref, rc, text or None) with lref -1 for the document
    start and (rref, rc) filled for right_mode 3 only. deletes: (ref, c, n). Raises
    ValidationError for anything malformed.
    """
    if type(payload) is not list or len(payload) not in (3, 4):
        raise ValidationError("text batch must be [actors, ints, text]")
    foreign, ints, text = payload[:3]
    if len(payload) == 4:
        parse_seed(payload[3])
    if type(foreign) is not list or type(ints) is not list or type(text) is not str:
        raise ValidationError("text batch must be [actors, ints, text]")
    if len(foreign) > MAX_BATCH_ACTORS:
        raise ValidationError(f"text batch refers to more than {MAX_BATCH_ACTORS} actors")
    seen = {actor}
    for f in foreign:
        if not is_actor(f) or f in seen:
            raise ValidationError("text batch actors must be distinct actor ids")
        seen.add(f)
    nref = len(foreign)
    for v in ints:
        if type(v) is not _INT or not 0 <= v <= MAX_COUNTER:
            raise ValidationError("text batch ints must be in 0..2**53-1")
    if len(ints) < 2:
        raise ValidationError("text batch lacks its header")
    ctr, count = ints[0], ints[1]
    p, end = 2, len(ints)
    tpos, tlen = 0, len(text)
    inserts = []
    try:
        for _ in range(count):
            h, n = ints[p], ints[p + 1]
            p += 2
            if h >= 32 or n < 1:
                raise ValidationError("text insert record is malformed")
            dead, lmode, rmode = h & 1, (h >> 1) & 3, h >> 3
            if lmode == 3 or (lmode == 0 and rmode in (1, 2)):
                raise ValidationError("text insert record has an invalid origin mode")
            lref, lc = -1, 0
            if lmode == 1:
                if ctr == 0:
                    raise ValidationError("text insert refers to a character before 0")
                lref, lc = 0, ctr - 1
            elif lmode == 2:
                lref, lc = ints[p], ints[p + 1]
                p += 2
                lc = _explicit(lref, lc, ctr, nref)
            rref, rc = -1, 0
            if rmode == 3:
                rref, rc = ints[p], ints[p + 1]
                p += 2
                rc = _explicit(rref, rc, ctr, nref)
            s = None
            if not dead:
                s = text[tpos:tpos + n]
                tpos += n
                if tpos > tlen:
                    raise ValidationError("text batch has fewer characters than its inserts")
            if ctr + n > MAX_COUNTER:
                raise ValidationError("text counter out of range")
            inserts.append((ctr, n, lref, lc, rmode, rref, rc, s))
            ctr += n
    except IndexError:
        raise ValidationError("text batch ends inside an insert record") from None
    if p > end:
        raise ValidationError("text batch ends inside an insert record")
    if tpos != tlen:
        raise ValidationError("text batch has more characters than its inserts")
    if (end - p) % 3:
        raise ValidationError("text batch ends inside a delete record")
    deletes = []
    prev = ctr
    for q in range(p, end, 3):
        r, z, n = ints[q], ints[q + 1], ints[q + 2]
        c = prev + _unzig(z)
        if r > nref or n < 1 or c < 0 or c + n > MAX_COUNTER:
            raise ValidationError("text delete record is malformed")
        deletes.append((r, c, n))
        prev = c
    return foreign, inserts, deletes


def _explicit(ref: int, v: int, ctr: int, nref: int) -> int:
    if ref > nref:
        raise ValidationError("text batch refers to an actor it does not list")
    if ref == 0:
        c = ctr - 1 - v
        if c < 0:
            raise ValidationError("text insert refers to a character before 0")
        return c
    return v


def apply_batch(t: TextCRDT, actor: bytes, payload: Any) -> None:
    foreign, inserts, deletes = parse_batch(payload, actor)
    seed = parse_seed(payload[3]) if len(payload) == 4 else None
    t.scan_budget = MAX_TEXT_SCAN_RUNS
    if seed is not None:
        source, stext = seed
        sa = t.actor_index(seed_actor(source, stext))
        if t.next_ctr[sa] == 0:  # a seed known already (another device's migration) is skipped
            t.integrate(sa, 0, len(stext), NONE, NONE, NONE, NONE, stext)
    refs = [t.actor_index(actor)] + [t.actor_index(f) for f in foreign]
    a = refs[0]
    nxt = t.next_ctr
    for c, n, lref, lc, rmode, rref, rc, s in inserts:
        if c + n <= nxt[a]:
            continue  # already known: our own block coming back
        if t.scan_budget < 0:
            break  # the batch's scan budget is spent: its remaining inserts are refused
        if lref < 0:
            la = lc = NONE
        else:
            la = refs[lref]
        if rmode == 0:
            ra, rc2 = NONE, NONE
        elif rmode == 1:
            ra, rc2 = _origin_right(t, la, lc)
            if ra == NONE and t.find_run(la, lc) is None:
                continue  # unknown origin: integrate would skip it too
        elif rmode == 2:
            ra, rc2 = la, lc + 1
        else:
            ra, rc2 = refs[rref], rc
        t.integrate(a, c, n, la, lc, ra, rc2, s)
    if a == t.me and t.batch_start < nxt[a]:
        # Our own block made elsewhere than in this CRDT (a text value assigned to the
        # field): its characters are sent already, the open batch starts after them.
        t.batch_start = nxt[a]
    for r, c, n in deletes:
        t.delete_ids(refs[r], c, n)


# ---------------------------------------------------------------- state

def encode_state(t: TextCRDT) -> bytes:
    """Canonical bytes of the whole text state (see module docstring)."""
    used = sorted({t.actors[r.a] for ch in t.chunks for r in ch.runs})
    rank = {t.actor_ids[x]: i for i, x in enumerate(used)}
    A: list[int] = []
    C: list[int] = []
    N: list[int] = []
    D: list[int] = []
    LA: list[int] = []
    LC: list[int] = []
    RA: list[int] = []
    RC: list[int] = []
    texts: list[str] = []
    pa = pd = NONE
    pend = prc = pra = None
    for ch in t.chunks:
        for r in ch.runs:
            dead = 1 if r.s is None else 0
            a = rank[r.a]
            ra = NONE if r.ra == NONE else rank[r.ra]
            if (a == pa and r.c == pend and dead == pd and r.la == r.a and r.lc == r.c - 1
                    and ra == pra and r.rc == prc):
                N[-1] += r.n
                pend += r.n
            else:
                A.append(a)
                C.append(r.c)
                N.append(r.n)
                D.append(dead)
                LA.append(NONE if r.la == NONE else rank[r.la])
                LC.append(r.lc)
                RA.append(ra)
                RC.append(r.rc)
                pa, pd, pend, pra, prc = a, dead, r.c + r.n, ra, r.rc
            if r.s is not None:
                texts.append(r.s)
    return msgpack.packb([STATE_FORMAT, used, A, C, N, D, LA, LC, RA, RC, "".join(texts)],
                         use_bin_type=True)


def load_state(data: bytes, actor: bytes | None = None) -> TextCRDT:
    """Rebuild a TextCRDT from `encode_state` bytes. Raises ValidationError if malformed.

    Checks are column-wise (C-level min/max/type scans) so that opening a long-edited
    document costs a few passes over its runs, not a replay of its keystrokes."""
    try:
        v = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception as exc:
        raise ValidationError(f"text state is not msgpack: {exc.__class__.__name__}") from None
    if type(v) is not list or len(v) != 11 or v[0] != STATE_FORMAT:
        raise ValidationError("text state has an unknown layout")
    _, actors, A, C, N, D, LA, LC, RA, RC, text = v
    cols = (A, C, N, D, LA, LC, RA, RC)
    if (type(actors) is not list or type(text) is not str
            or any(type(col) is not list or len(col) != len(A) for col in cols)):
        raise ValidationError("text state columns are malformed")
    na = len(actors)
    if not all(map(is_actor, actors)) or len(set(actors)) != na:
        raise ValidationError("text state actors are malformed")
    try:  # a C-level type check: every column holds 64-bit ints (msgpack's bools count as 0/1)
        for col in cols:
            array("q", col)
    except (TypeError, OverflowError):
        raise ValidationError("text state holds a non-integer") from None
    if A and (min(A) < 0 or max(A) >= na or min(C) < 0 or min(N) < 1
              or not set(D) <= {0, 1} or min(LA) < NONE or max(LA) >= na
              or min(RA) < NONE or max(RA) >= na or max(C) + max(N) > MAX_COUNTER):
        raise ValidationError("text state holds an out-of-range number")
    t = TextCRDT()
    for x in actors:
        t.actor_index(x)
    vis = [0 if d else n for n, d in zip(N, D, strict=True)]
    if sum(vis) != len(text):
        raise ValidationError("text state characters do not match its runs")
    S = [text[e - k:e] if k else None for k, e in zip(vis, accumulate(vis), strict=True)]
    runs = list(map(Run, A, C, N, LA, LC, RA, RC, S, [None] * len(A)))
    chunks = []
    half = MAX_CHUNK_RUNS // 2
    for i in range(0, len(runs), half):
        ch = Chunk(runs[i:i + half], sum(vis[i:i + half]))
        for r in ch.runs:
            r.k = ch
        chunks.append(ch)
    t.chunks = chunks or [Chunk([], 0)]
    t.length = len(text)
    t.text_cache = text
    # Counters of each actor must be exactly 0, 1, 2, ... (integrate keeps them gap-free).
    nxt = t.next_ctr
    by_actor: list[list] = [[] for _ in range(na)]
    order = sorted(range(len(A)), key=C.__getitem__)
    if na > 1:
        order.sort(key=A.__getitem__)  # stable: by actor, then counter
    for i in order:
        a, c = A[i], C[i]
        if c != nxt[a]:
            raise ValidationError("text state character ids overlap or leave a gap")
        nxt[a] = c + N[i]
        by_actor[a].append(runs[i])
    for a, lst in enumerate(by_actor):
        ids = t.ids[a]
        step = ids.BLOCK
        for i in range(0, len(lst), step):
            part = lst[i:i + step]
            ids.runs.append(part)
            ids.keys.append([r.c for r in part])
            ids.tops.append(part[0].c)
    if (min(LC, default=0) < NONE or min(RC, default=0) < NONE
            or any(c >= nxt[a] for a, c in zip(LA, LC, strict=True) if a != NONE)
            or any(c >= nxt[a] for a, c in zip(RA, RC, strict=True) if a != NONE)):
        raise ValidationError("text state refers to an unknown character")
    if actor is not None:
        t.bind(actor)
    return t

