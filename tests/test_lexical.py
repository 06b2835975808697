"""Runtime-independent lexical rules (core/lexical.py) and option bounds (core/limits.py)."""

import datetime
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core.errors import ValidationError
from ostracon.core.lexical import ascii_fold, is_ascii_digits, is_datetime, parse_ascii_int
from ostracon.core.limits import MAX_PORTABLE_INT, check_int_option


@pytest.mark.parametrize("text,n", [("0", 0), ("7", 7), ("123", 123), ("18446744073709551616", 2**64)])
def test_parse_ascii_int_reads_decimal_ascii(text, n):
    assert parse_ascii_int(text) == n


@pytest.mark.parametrize("text", ["", "-", "+1", " 1", "1 ", "1_0", "01", "\u0663", "\uff13", "1\u0660",
                                  "0x10", "1e3", "123456789012345678901", "\U0001d7ce", None, 3])
def test_parse_ascii_int_refuses_everything_else(text):
    with pytest.raises(ValidationError):
        parse_ascii_int(text)


def test_parse_ascii_int_signed():
    assert parse_ascii_int("-12", signed=True) == -12
    with pytest.raises(ValidationError):
        parse_ascii_int("-12")


def test_is_ascii_digits_checks_every_character():
    assert is_ascii_digits("0123456789")
    assert not is_ascii_digits("12\u0663") and not is_ascii_digits("")


def test_ascii_fold_touches_ascii_letters_only():
    assert ascii_fold("ABC xyz ÄÖ Σ \ua7cb \u212a İ") == "abc xyz ÄÖ Σ \ua7cb \u212a İ"
    every = "".join(chr(c) for c in range(0x250))
    folded = ascii_fold(every)
    assert [i for i, (a, b) in enumerate(zip(every, folded, strict=True)) if a != b] == list(range(65, 91))


@pytest.mark.parametrize("s", [
    "2020-01-01", "2020-02-29", "2000-02-29", "0001-01-01", "9999-12-31", "2020-01-01T00:00",
    "2020-01-01 23:59", "2020-01-01T23:59:59", "2020-01-01T10:00:00.1", "2020-01-01T10:00:00.123456789",
    "2020-01-01T10:00Z", "2020-01-01T10:00:00+05:30", "2020-01-01T10:00-0800", "2020-12-31T10:00:00.5-23:59",
])
def test_datetimes_accepted(s):
    assert is_datetime(s)


@pytest.mark.parametrize("s", [
    "", "2020", "2020-01", "2020-13-01", "2020-00-10", "2020-01-00", "2020-01-32", "2021-02-29", "1900-02-29",
    "0000-01-01", "2020-04-31", "2020-01-01T24:00", "2020-01-01T23:60", "2020-01-01T10:00:60",
    "2020-01-01T10", "2020-01-01T10:00:00.", "2020-01-01T10:00:00.1234567890", "2020-01-01T10:00:00,5",
    "2020-01-01t10:00", "2020-01-01T10:00z", "2020-01-01T10:00+05", "2020-01-01T10:00+24:00",
    "2020-01-01T10:00+05:60", "2020-01-01T10:00 +05:00", "2020-W01-1", "2020-001", "20200101",
    "\u0662\u0660\u0662\u0660-01-01", "2020-\uff10\uff11-01", "2020-01-01T1\u0660:00", " 2020-01-01",
    "2020-01-01\n", "2020-01-01T10:00:00+05:30:00", "+2020-01-01", "2020-01-01T10:00:00.5" + "0" * 60, None, 20200101,
])
def test_datetimes_refused(s):
    assert not is_datetime(s)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31, 23, 59, 59)))
def test_every_real_instant_is_accepted_in_its_iso_form(dt):
    assert is_datetime(dt.isoformat(timespec="seconds"))
    assert is_datetime(dt.date().isoformat())
    assert is_datetime(dt.isoformat(timespec="microseconds") + "Z")


def test_grammar_agrees_with_the_calendar_for_every_day_of_a_leap_cycle():
    rng = random.Random(14)
    for year in [1, 4, 100, 400, 1900, 2000, 2023, 2024, rng.randrange(1, 10000)]:
        for month in range(1, 13):
            for day in range(1, 33):
                try:
                    datetime.date(year, month, day)
                    real = True
                except ValueError:
                    real = False
                assert is_datetime(f"{year:04d}-{month:02d}-{day:02d}") == real, (year, month, day)


def test_check_int_option_bounds():
    assert check_int_option("x", 5, 1, 10) == 5
    for bad in (0, 11, True, 5.0, "5", None):
        with pytest.raises(ValidationError, match="x must be an int"):
            check_int_option("x", bad, 1, 10)
    with pytest.raises(ValidationError):
        check_int_option("x", MAX_PORTABLE_INT + 1, 0, MAX_PORTABLE_INT)
    assert check_int_option("x", MAX_PORTABLE_INT, 0) == MAX_PORTABLE_INT
