"""The JSON rules past the syntax (devstack_client.jsonrules): what they refuse, and where."""

from __future__ import annotations

import json

import pytest

from devstack_client import InvalidInput
from devstack_client.jsonrules import (
    LONE_SURROGATE,
    MAX_DEPTH,
    NAME_LONE_SURROGATE,
    OUT_OF_RANGE,
    TOO_DEEP,
    check_json,
    first_violation,
    nesting_depth,
)


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": "\\ud800"}', ("/a", LONE_SURROGATE)),
        ('{"a": ["ok", {"b": "x\\udfffy"}]}', ("/a/1/b", LONE_SURROGATE)),
        ('{"\\ud800": 1}', ("", NAME_LONE_SURROGATE)),
        ('{"a": {"\\udc00": 1}}', ("/a", NAME_LONE_SURROGATE)),
        ('{"a": 1e400}', ("/a", OUT_OF_RANGE)),
        ('{"a": [-1e400]}', ("/a/0", OUT_OF_RANGE)),
        ('{"a/b": {"c~d": "\\ud800"}}', ("/a~1b/c~0d", LONE_SURROGATE)),
        # The first in document order, nesting before anything else.
        ('{"a": "\\ud800", "b": 1e400}', ("/a", LONE_SURROGATE)),
        (f'{{"a": "\\ud800", "b": {nested(MAX_DEPTH)}}}', ("", TOO_DEEP)),
    ],
)
def test_violations_are_found_where_they_are(text: str, expected: tuple[str, str]) -> None:
    assert first_violation(json.loads(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"emoji": "\\ud83d\\ude00", "plain": "é", "n": 1.7976931348623157e308}',
        nested(MAX_DEPTH),
        '{"a": []}',
        "[]",
        '"text"',
    ],
)
def test_what_json_can_carry_passes(text: str) -> None:
    assert first_violation(json.loads(text)) is None


def test_depth_is_counted_from_one_and_limited_to_64() -> None:
    assert first_violation(json.loads(nested(MAX_DEPTH + 1))) == ("", TOO_DEEP)
    assert nesting_depth(nested(MAX_DEPTH)) == MAX_DEPTH
    assert nesting_depth('{"a": "[[[{{{\\"", "b": [1]}') == 2  # brackets in strings do not count
    assert nesting_depth(b"1") == 0


def test_a_deep_value_is_checked_without_recursion() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert first_violation(deep) == ("", TOO_DEEP)
    assert nesting_depth(nested(100_000)) == 100_000


def test_check_json_names_the_place() -> None:
    with pytest.raises(InvalidInput, match="the message at /a must not contain a lone surrogate"):
        check_json({"a": "\ud800"}, "the message")
    check_json({"a": "fine"}, "the message")
