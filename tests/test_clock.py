"""Hybrid logical clock (core/clock.py)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core import clock
from ostracon.core.clock import COUNTER_MASK, MAX_WALL_MS, HybridClock
from ostracon.core.errors import ValidationError

T0 = 1_700_000_000_000


def test_stamp_layout():
    s = clock.make(T0, 5)
    assert s == (T0 << 16) | 5
    assert clock.wall_ms(s) == T0 and clock.counter(s) == 5


def test_follows_the_wall_clock_when_it_moves_forward():
    c = HybridClock()
    assert c.now(T0) == clock.make(T0, 0)
    assert c.now(T0 + 1) == clock.make(T0 + 1, 0)
    assert c.now(T0 + 1000) == clock.make(T0 + 1000, 0)


def test_same_millisecond_bumps_the_counter():
    c = HybridClock()
    stamps = [c.now(T0) for _ in range(5)]
    assert stamps == [clock.make(T0, i) for i in range(5)]


def test_monotonic_when_the_wall_clock_goes_backwards():
    c = HybridClock()
    a = c.now(T0)
    b = c.now(T0 - 60_000)      # an NTP step back of a minute
    d = c.now(0)
    assert a < b < d
    assert clock.wall_ms(b) == clock.wall_ms(d) == T0
    assert c.now(T0 + 5) == clock.make(T0 + 5, 0)  # catches up once the wall clock passes it


def test_counter_overflow_carries_into_the_wall_part():
    c = HybridClock(last=clock.make(T0, COUNTER_MASK))
    s = c.now(T0)
    assert s == clock.make(T0 + 1, 0)
    assert s > clock.make(T0, COUNTER_MASK)


def test_many_stamps_in_one_millisecond_stay_strictly_increasing():
    c = HybridClock()
    prev = -1
    for _ in range(COUNTER_MASK + 10):
        s = c.now(T0)
        assert s > prev
        prev = s
    assert clock.wall_ms(prev) == T0 + 1 and clock.counter(prev) == 8


def test_observe_moves_the_clock_past_remote_stamps():
    c = HybridClock()
    c.now(T0)
    remote = clock.make(T0 + 10_000, 7)   # a peer whose clock is 10 s ahead
    c.observe(remote)
    s = c.now(T0 + 1)
    assert s > remote and s == remote + 1
    c.observe(clock.make(T0, 0))           # older stamps change nothing
    assert c.now(T0 + 2) == remote + 2


@pytest.mark.parametrize("wall", [-1, 1.5, "1", None, True, MAX_WALL_MS + 1, 2**64])
def test_refuses_bad_wall_values(wall):
    with pytest.raises(ValidationError):
        HybridClock().now(wall)


def test_accepts_the_largest_wall_time():
    assert HybridClock().now(MAX_WALL_MS) == clock.make(MAX_WALL_MS, 0)
    assert clock.make(MAX_WALL_MS, COUNTER_MASK) == 2**64 - 1


def test_refuses_to_run_past_64_bits():
    # After observing the last representable stamp (a hostile peer), the clock must fail
    # loudly instead of producing a stamp that no decoder accepts.
    c = HybridClock()
    c.observe(2**64 - 1)
    with pytest.raises(ValidationError):
        c.now(T0)
    assert c.last == 2**64 - 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2**40)), max_size=60))
def test_stamps_exceed_everything_produced_or_observed(events):
    c = HybridClock()
    high = -1
    for is_observe, value in events:
        if is_observe:
            stamp = value << 16 | (value & 0xFF)
            c.observe(stamp)
            high = max(high, stamp)
        else:
            s = c.now(value)
            assert s > high
            assert clock.wall_ms(s) >= value
            high = s
