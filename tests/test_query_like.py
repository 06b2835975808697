"""SQL LIKE (ostracon.core.query.like): case folding, escapes, the planner's prefix split.
The random comparison against a reference LIKE and the hostile-pattern checks are in
tests/test_query.py (through the names filters.py re-exports)."""

import pytest

from ostracon.core.query import filters, like
from ostracon.core.query.like import like_matcher, like_prefix


def test_filters_re_exports_the_like_functions():
    assert filters.like_matcher is like.like_matcher
    assert filters.like_prefix is like.like_prefix


@pytest.mark.parametrize(("pattern", "value", "plain", "folded"), [
    ("ABC", "abc", False, True),
    ("a%C", "AxyzC", False, True),
    ("_b_", "ABC", False, True),
    ("É", "é", False, False),          # folding is ASCII only: the same in every runtime
    ("ß%", "SS", False, False),
    ("a\\%", "a%", True, True),         # an escaped % is a literal
    ("a\\_", "ab", False, False),       # an escaped _ is a literal
    ("a\\", "a\\", True, True),         # a trailing lone backslash is itself
    ("", "", True, True),
    ("%", "", True, True),
    ("_", "", False, False),
    ("a%b%c", "a\nb\nc", True, True),   # % and _ span line breaks
])
def test_like_matches_whole_strings(pattern, value, plain, folded):
    assert like_matcher(pattern)(value) is plain
    # The caller folds the value (filters.py does), the matcher folds the pattern.
    assert like_matcher(pattern, ignore_case=True)(value.lower() if value.isascii() else value) is folded


@pytest.mark.parametrize(("pattern", "expected"), [
    ("", ("", False, False)),
    ("%", ("", True, True)),
    ("ab%%", ("ab", True, True)),
    ("ab_", ("ab", True, False)),
    ("ab%_%", ("ab", True, False)),
    ("a\\_b%", ("a_b", True, True)),
    ("a\\", ("a\\", False, False)),
])
def test_like_prefix_splits_the_literal_start(pattern, expected):
    assert like_prefix(pattern) == expected
