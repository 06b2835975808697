"""Hybrid logical clock: `(wall_ms << 16) | counter`, monotonic even if the wall clock isn't.

The wall clock is a value passed in (the core never reads a clock). A stamp is strictly
greater than every stamp this clock produced or observed before, so causally later
changes always win last-writer-wins comparisons against what their author had seen.
"""

from __future__ import annotations

from .errors import ValidationError

COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1
#: Largest wall time accepted (year ~10889): bounds stamps to 64 bits on the wire.
MAX_WALL_MS = (1 << 48) - 1
#: Largest stamp: blocks carry `t` as a msgpack uint64.
MAX_STAMP = (1 << 64) - 1


def make(wall_ms: int, counter: int = 0) -> int:
    return (wall_ms << COUNTER_BITS) | counter


def wall_ms(stamp: int) -> int:
    return stamp >> COUNTER_BITS


def counter(stamp: int) -> int:
    return stamp & COUNTER_MASK


class HybridClock:
    """Produces strictly increasing stamps from an injected wall time."""

    __slots__ = ("last",)

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def now(self, wall: int) -> int:
        """A stamp > every previous one; uses `wall` (ms) when it is ahead."""
        if type(wall) is not int or wall < 0 or wall > MAX_WALL_MS:
            raise ValidationError(f"wall clock must be an int of ms in [0, 2^48): {wall!r}")
        candidate = wall << COUNTER_BITS
        if candidate <= self.last:
            candidate = self.last + 1  # carries into the wall part when the counter overflows
            if candidate > MAX_STAMP:
                # Only reachable after observing a stamp at the very end of the range (a
                # hostile or broken peer). Refuse loudly: a stamp >= 2^64 would make a block
                # that every decoder (including our own on reopen) rejects.
                raise ValidationError("hybrid clock exhausted: a stamp beyond 2^64-1 was seen")
        self.last = candidate
        return candidate

    def observe(self, stamp: int) -> None:
        """Account for a stamp seen from another replica."""
        if stamp > self.last:
            self.last = stamp
