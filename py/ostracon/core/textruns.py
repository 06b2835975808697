"""Storage of the text CRDT: runs of characters, the chunks that hold them in document order, and
the per-actor id index that finds a character's run. PURE."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

NONE = -1  # "no origin": document start (left) or end (right)


class Run:
    """Characters [c, c+n) of actor `a`, consecutive in the document.

    (la, lc): origin-left of the first character (la == NONE: document start); every later
    character's origin-left is the character before it. (ra, rc): origin-right of every
    character in the run (ra == NONE: document end). `s` is the text, None once deleted.
    """

    __slots__ = ("a", "c", "n", "la", "lc", "ra", "rc", "s", "k")

    def __init__(self, a: int, c: int, n: int, la: int, lc: int, ra: int, rc: int,
                 s: str | None, k: Any) -> None:
        self.a = a
        self.c = c
        self.n = n
        self.la = la
        self.lc = lc
        self.ra = ra
        self.rc = rc
        self.s = s
        self.k: Chunk = k  # its chunk (set by whoever places the run)


class Chunk:
    __slots__ = ("runs", "vis")

    def __init__(self, runs: list[Run], vis: int) -> None:
        self.runs = runs
        self.vis = vis


class IdIndex:
    """One actor's runs sorted by first counter, in blocks (inserting a split piece costs a
    block, not the whole list) with the blocks' first counters on top for bisect."""

    __slots__ = ("tops", "keys", "runs")
    BLOCK = 256

    def __init__(self) -> None:
        self.tops: list[int] = []
        self.keys: list[list[int]] = []
        self.runs: list[list[Run]] = []

    def at_or_before(self, c: int) -> Run | None:
        b = bisect_right(self.tops, c) - 1
        if b < 0:
            return None
        return self.runs[b][bisect_right(self.keys[b], c) - 1]

    def find(self, c: int) -> Run | None:
        r = self.at_or_before(c)
        return r if r is not None and c < r.c + r.n else None

    def next_from(self, c: int) -> Run | None:
        """The run holding counter c, else the first run starting after c, else None."""
        tops = self.tops
        b = bisect_right(tops, c) - 1
        if b < 0:
            return self.runs[0][0] if tops else None
        ks = self.keys[b]
        i = bisect_right(ks, c) - 1
        r = self.runs[b][i]
        if c < r.c + r.n:
            return r
        if i + 1 < len(ks):
            return self.runs[b][i + 1]
        return self.runs[b + 1][0] if b + 1 < len(tops) else None

    def add(self, r: Run) -> None:
        c = r.c
        tops = self.tops
        if not tops:
            tops.append(c)
            self.keys.append([c])
            self.runs.append([r])
            return
        b = bisect_right(tops, c) - 1
        if b < 0:
            b = 0
            tops[0] = c
        ks, rs = self.keys[b], self.runs[b]
        if ks[-1] < c:
            ks.append(c)
            rs.append(r)
        else:
            i = bisect_right(ks, c)
            ks.insert(i, c)
            rs.insert(i, r)
        if len(ks) > 2 * self.BLOCK:
            h = self.BLOCK
            self.keys.insert(b + 1, ks[h:])
            del ks[h:]
            self.runs.insert(b + 1, rs[h:])
            del rs[h:]
            tops.insert(b + 1, self.keys[b + 1][0])
