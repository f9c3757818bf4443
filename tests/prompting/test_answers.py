"""Answer extraction and the four match rules, by hand-written examples."""

from __future__ import annotations

import pytest

from engines.answers import extract, is_match, majority
from engines.errors import UserError


@pytest.mark.parametrize(
    ("reference", "text", "match", "expected"),
    [
        ("42", "The answer is 42.", "numeric", True),
        ("1234", "Adding up... so the answer is 1,234", "numeric", True),
        ("53.9", "about 53.88 times", "numeric", True),
        ("53.9", "about 60 times", "numeric", False),
        ("Paris", "paris.\nMore text", "exact", True),
        ("Paris", "The capital is Paris", "exact", False),
        ("Tobin Ashgrove", "It was founded by Tobin Ashgrove in 1742.", "contains", True),
        ("Tobin", "Tobinson", "contains", False),
        ('{"a": 1, "b": "x"}', 'Here: {"b": "x", "a": 1}', "json", True),
        ('{"a": 1}', '{"a": 2}', "json", False),
        ("positive", "Answer: Positive", "exact", True),
    ],
)
def test_matching(reference, text, match, expected):
    assert is_match(reference, text, match) is expected


def test_numeric_tolerance_is_relative():
    assert is_match("100", "105", "numeric", tolerance=0.1)
    assert not is_match("100", "105", "numeric", tolerance=0.01)


def test_extract_keys_for_votes():
    assert extract("so the answer is 12.", "numeric") == "12"
    assert extract('{"b": 1, "a": 2}', "json") == '{"a": 2, "b": 1}'
    assert extract("nothing here", "numeric") is None


def test_majority_and_agreement():
    assert majority(["12", "12", None, "13"]) == ("12", 0.5)
    assert majority([None, None]) == (None, 0.0)
    assert majority(["a", "b"]) == ("a", 0.5)


def test_unknown_match_names_the_choices():
    with pytest.raises(UserError, match="exact, numeric, json, contains"):
        is_match("1", "1", "fuzzy")
