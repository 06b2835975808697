"""The pinned Unicode 14 assignment table (core/unicode14.py) against the runtime's database."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from ostracon.core.unicode14 import ASSIGNED_RANGES, UNICODE_VERSION, first_unassigned, is_assigned


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def test_ranges_are_sorted_disjoint_and_in_range() -> None:
    prev_end = -1
    for a, b in ASSIGNED_RANGES:
        assert prev_end < a < b <= 0x110000, (a, b)
        prev_end = b


def test_table_matches_a_runtime_database() -> None:
    # Every later Unicode keeps each assigned code point assigned; on a 14.0 runtime (CPython
    # 3.11) the table is exactly the database's.
    assert _version(unicodedata.unidata_version) >= _version(UNICODE_VERSION)
    for a, b in ASSIGNED_RANGES:
        for cp in range(a, b):
            assert unicodedata.category(chr(cp)) != "Cn", hex(cp)
    if unicodedata.unidata_version == UNICODE_VERSION:
        assigned = sum(b - a for a, b in ASSIGNED_RANGES)
        assert assigned == sum(1 for cp in range(0x110000) if unicodedata.category(chr(cp)) != "Cn")


def test_known_points() -> None:
    assert is_assigned(ord("a")) and is_assigned(0x00E9) and is_assigned(0x1F600)
    assert not is_assigned(0x0378)          # unassigned since forever
    assert not is_assigned(0x113C2)         # Tulu-Tigalari: Unicode 16
    assert not is_assigned(0x1FAE9)         # an emoji added in Unicode 15
    assert first_unassigned("Café 😀") is None
    assert first_unassigned("ab\U000113C2c") == "\U000113C2"


@given(st.integers(min_value=0, max_value=0x10FFFF))
def test_is_assigned_agrees_with_a_linear_scan(cp: int) -> None:
    assert is_assigned(cp) == any(a <= cp < b for a, b in ASSIGNED_RANGES)
