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
#: How far (ms) a remote block's stamp may run ahead of the receiver's wall clock before the
#: receiver holds it back (not applied, not adopted by the local clock) until its own clock
#: catches up. Five minutes tolerates badly set device clocks without letting one member drag
#: every replica's clock (and every later commit's time) into the future. See docs/SYNC.md.
DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60 * 1000


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

    def observe(self, stamp: int, limit: int | None = None) -> None:
        """Account for a stamp seen from another replica.

        `limit`: the highest stamp this clock may adopt (the receiver's wall clock plus the
        allowed skew). A stamp beyond it is not adopted: remote input can then never push
        the local clock towards exhaustion or stamp later local commits in the far future.
        """
        if limit is not None and stamp > limit:
            stamp = limit
        if stamp > self.last:
            self.last = stamp


def skew_limit(wall: int, max_skew_ms: int) -> int:
    """The largest stamp a receiver whose wall clock reads `wall` (ms) accepts."""
    return min(make(min(wall + max_skew_ms, MAX_WALL_MS), COUNTER_MASK), MAX_STAMP)


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01, proleptic Gregorian.

    H. Hinnant, "chrono-Compatible Low-Level Date Algorithms" (civil_from_days): integer
    arithmetic only, valid for every day a 48-bit ms stamp can name (datetime stops at 9999).
    """
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def format_ms(ms: int) -> str:
    """ISO 8601 UTC text of a wall time in ms, e.g. `2026-11-30T04:49:18.123Z`.

    Total over every legal stamp's wall part (0 .. 2^48-1, up to year 10889): years beyond
    9999 print with five digits. Never uses datetime, whose range ends at year 9999.
    """
    if type(ms) is not int or ms < 0:
        raise ValidationError(f"wall time must be an int of ms >= 0: {ms!r}")
    secs, milli = divmod(ms, 1000)
    days, rem = divmod(secs, 86400)
    year, month, day = _civil(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{milli:03d}Z"


def format_stamp(stamp: int) -> str:
    """ISO 8601 UTC text of a stamp's wall part (see format_ms)."""
    return format_ms(wall_ms(stamp))
