"""Checking numeric options the same way in every runtime.

Natively a Python int option can be any size; in Pyodide (32-bit WebAssembly) a value that
reaches a C-level size (a deque's `maxlen`, a buffer length, a sleep) above 2**31 - 1 raises
OverflowError, natively it does not. Every int option therefore goes through
`check_int_option`, with an upper bound that is a documented limit: at most
`MAX_PORTABLE_INT` for counts and sizes, at most `MAX_SAFE_INT` (exact in a JS number) for
durations. The same value gives the same typed error everywhere.
"""

from __future__ import annotations

from typing import Any

from .errors import ValidationError

#: The largest value a C `Py_ssize_t` holds in every runtime (32-bit in WebAssembly).
MAX_PORTABLE_INT = 2**31 - 1
#: The largest integer a JS number holds exactly (durations in ms cross the JS bridge).
MAX_SAFE_INT = 2**53 - 1


def check_int_option(name: str, value: Any, lo: int, hi: int = MAX_PORTABLE_INT) -> int:
    """`value` if it is an int (not a bool) with lo <= value <= hi; else ValidationError
    naming the option and its range."""
    if type(value) is not int or not lo <= value <= hi:
        raise ValidationError(f"{name} must be an int in [{lo}, {hi}], got {value!r:.40}")
    return value
