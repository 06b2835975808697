"""SQL LIKE for the filter operators `_like _nlike _ilike _nilike` (filters.py) and the
planner's index ranges for them (planner.py).

Semantics: `%` = any run of characters, `_` = one character, `\\` escapes the next character
(a trailing lone `\\` is a literal backslash); the pattern matches the whole string. Case
folding for `_ilike` is ASCII only (core/lexical.py), so every runtime answers the same.
Pure: no I/O, no state.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..lexical import ascii_fold

__all__ = ["like_matcher", "like_prefix"]


def like_matcher(pattern: str, *, ignore_case: bool = False) -> Callable[[str], bool]:
    """A whole-string SQL LIKE test for `pattern`, in time O(len(value) × len(pattern)).

    The pattern is cut at each `%` into segments of fixed length (literal characters and `_`);
    the first segment must match at the start, the last at the end, and each middle one is
    taken at its leftmost match after the previous one (leftmost is always safe between two
    `%`). A translation to one backtracking regex would take time exponential in the number
    of `%` on a hostile pattern such as `%a%a%a…%b`. With `ignore_case`, ASCII letters of the
    pattern are folded here and the caller folds the value (core/lexical.py).
    """
    segments: list[list[str]] = [[]]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            segments[-1].append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "%":
            segments.append([])
        elif c == "_":
            segments[-1].append(".")
        else:
            segments[-1].append(re.escape(c))
        i += 1
    # One compiled regex per segment: fixed length, no quantifiers, so it never backtracks.
    widths = [len(seg) for seg in segments]
    rxs = [re.compile(ascii_fold("".join(seg)) if ignore_case else "".join(seg), re.DOTALL) for seg in segments]
    if len(rxs) == 1:
        only = rxs[0].fullmatch
        return lambda v: only(v) is not None
    first, last, middle = rxs[0], rxs[-1], rxs[1:-1]
    head, tail = widths[0], widths[-1]

    def match(v: str) -> bool:
        end = len(v) - tail
        if end < head or first.match(v) is None or last.fullmatch(v, end) is None:
            return False
        pos = head
        for rx in middle:
            m = rx.search(v, pos, end)
            if m is None:
                return False
            pos = m.end()
        return True
    return match


def like_prefix(pattern: str) -> tuple[str, bool, bool]:
    """(literal prefix, has wildcard, pattern is exactly `prefix%…%`) of a LIKE pattern."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in "%_":
            rest = pattern[i:]
            return "".join(out), True, rest.strip("%") == ""
        out.append(c)
        i += 1
    return "".join(out), False, False
