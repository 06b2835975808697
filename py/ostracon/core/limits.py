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
#: Runs the conflict scans of one remote text batch may visit in total (core/text.py,
#: `TextCRDT.integrate`). An honest insert scans only the characters inserted concurrently
#: into the gap between its two neighbours, a handful of runs; a hostile batch can name far-apart
#: origins (document start and end) in every record and make each scan walk the whole text.
#: Past the budget the batch's remaining inserts are refused like inserts with an unknown
#: origin (that writer's later inserts into the field are then refused too: counters must
#: stay gap-free). 100,000 runs is more than two devices typing apart at one spot for days
#: create, and bounds one block's merge work to well under a second.
MAX_TEXT_SCAN_RUNS = 100_000


def check_int_option(name: str, value: Any, lo: int, hi: int = MAX_PORTABLE_INT) -> int:
    """`value` if it is an int (not a bool) with lo <= value <= hi; else ValidationError
    naming the option and its range."""
    if type(value) is not int or not lo <= value <= hi:
        raise ValidationError(f"{name} must be an int in [{lo}, {hi}], got {value!r:.40}")
    return value


def check_callable_option(name: str, value: Any) -> Any:
    """`value` if it is None or callable; else ValidationError naming the option (a callback
    given the wrong way round would otherwise fail much later, inside another thread)."""
    if value is not None and not callable(value):
        raise ValidationError(f"{name} must be callable or None, got {type(value).__name__}")
    return value
