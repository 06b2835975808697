"""Lexical rules that must give the same answer in every runtime.

Natively Ostracon runs on CPython 3.11+ (Unicode 14 on 3.11); in the browser on Pyodide
(CPython 3.14, Unicode 16). Anything that reaches blocks, keys, cursors, query results or
error types therefore never asks the interpreter's Unicode database or a stdlib parser
whose grammar changed between versions. This module holds the replacements:

- `parse_ascii_int`: decimal integers of ASCII digits only. `int()` also accepts every
  Unicode decimal digit ("٣", "３") and `_` separators, and which digits exist depends on
  the Unicode version.
- `ascii_fold`: case folding for `_ilike` / `_nilike` maps A-Z to a-z and nothing else.
  Full Unicode case folding changes between Unicode versions (Unicode 15/16 added 27 case
  pairs, e.g. U+A7CB / U+0264); a pinned table would have to be shipped and kept in step
  with both runtimes, so non-ASCII letters compare exactly (documented in docs/QUERIES.md).
- `is_datetime`: the `DateTime` grammar, RFC 3339's `date-time` / `full-date` with the
  space separator and the zone-less form allowed. `datetime.fromisoformat` accepts more on
  each release (3.14 takes `T24:00`, ordinal and week dates), so it is not used.
"""

from __future__ import annotations

from .errors import ValidationError

_DIGITS = "0123456789"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FOLD = str.maketrans(_UPPER, _UPPER.lower())

#: Longest integer `parse_ascii_int` reads by default: 2**64 has 20 digits, and a bound keeps
#: hostile input from costing quadratic time in `int()` (which CPython also limits, at 4300
#: digits, differently per version).
MAX_INT_DIGITS = 20

#: `is_datetime` refuses longer strings before looking at them (the longest valid form,
#: `YYYY-MM-DDThh:mm:ss.fffffffff+hh:mm`, is 35 characters).
MAX_DATETIME_CHARS = 64

#: Fractional seconds: up to nanoseconds, as RFC 3339 allows any number but 9 is what
#: every clock source produces.
MAX_FRACTION_DIGITS = 9


def is_ascii_digits(text: str) -> bool:
    """True if `text` is non-empty and made only of the ASCII digits 0-9."""
    if not text:
        return False
    for c in text:
        if c not in _DIGITS:
            return False
    return True


def parse_ascii_int(text: str, *, signed: bool = False, max_digits: int = MAX_INT_DIGITS) -> int:
    """`text` as a decimal int: ASCII digits only, an optional leading `-` when `signed`,
    no sign `+`, spaces, `_` or leading zeros (except "0"). Raises ValidationError."""
    if type(text) is not str:
        raise ValidationError(f"expected a decimal string, got {type(text).__name__}")
    body = text[1:] if signed and text[:1] == "-" else text
    if not is_ascii_digits(body) or len(body) > max_digits or (len(body) > 1 and body[0] == "0"):
        raise ValidationError(f"not a decimal integer of at most {max_digits} ASCII digits: {text!r:.40}")
    n = int(body)
    return -n if body is not text else n


def ascii_fold(text: str) -> str:
    """`text` with A-Z mapped to a-z; every other character unchanged."""
    return text.translate(_FOLD)


def _digits(s: str, i: int, n: int) -> int:
    part = s[i:i + n]
    if len(part) != n or not is_ascii_digits(part):
        raise ValueError
    return int(part)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _check_date(s: str) -> None:
    year, month, day = _digits(s, 0, 4), _digits(s, 5, 2), _digits(s, 8, 2)
    if s[4] != "-" or s[7] != "-" or year < 1 or not 1 <= month <= 12:
        raise ValueError
    if not 1 <= day <= _days_in_month(year, month):
        raise ValueError


def _check_time(s: str) -> None:
    """hh:mm[:ss[.f{1,9}]][Z|+hh:mm|-hh:mm|+hhmm|-hhmm]"""
    hour, minute = _digits(s, 0, 2), _digits(s, 3, 2)
    if s[2:3] != ":" or hour > 23 or minute > 59:  # no 24:00, no leap second 60
        raise ValueError
    i = 5
    if s[i:i + 1] == ":":
        if _digits(s, i + 1, 2) > 59:
            raise ValueError
        i += 3
        if s[i:i + 1] == ".":
            j = i + 1
            while j < len(s) and s[j] in _DIGITS:
                j += 1
            if not 1 <= j - i - 1 <= MAX_FRACTION_DIGITS:
                raise ValueError
            i = j
    zone = s[i:]
    if zone == "" or zone == "Z":
        return
    if zone[0] not in "+-":
        raise ValueError
    if len(zone) == 6 and zone[3] == ":":
        zh, zm = _digits(zone, 1, 2), _digits(zone, 4, 2)
    elif len(zone) == 5:
        zh, zm = _digits(zone, 1, 2), _digits(zone, 3, 2)
    else:
        raise ValueError
    if zh > 23 or zm > 59:
        raise ValueError


def is_datetime(s: object) -> bool:
    """Is `s` a DateTime string: `YYYY-MM-DD` or `YYYY-MM-DD(T| )hh:mm[:ss[.fraction]][zone]`
    with zone `Z`, `±hh:mm` or `±hhmm`? Calendar-checked (Gregorian leap years, years
    0001-9999); ASCII digits and upper-case `T`/`Z` only; no hour 24, no leap second."""
    if type(s) is not str or len(s) > MAX_DATETIME_CHARS or len(s) < 10:
        return False
    try:
        _check_date(s)
        if len(s) == 10:
            return True
        if s[10] not in "T ":
            return False
        _check_time(s[11:])
    except (ValueError, IndexError):
        return False
    return True
