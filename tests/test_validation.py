"""The checks on JSON values, integers and usage: what they refuse, how they say where,
and that their cost stays linear in the size of the value."""

from __future__ import annotations

import time
from typing import Any

import pytest

from convstore import InvalidInputError, Usage
from convstore.search.results import make_cursor, read_cursor
from convstore.validation import (
    MAX_INT,
    MAX_JSON_DEPTH,
    MAX_JSON_ITEMS,
    MAX_JSON_KEY_LENGTH,
    MIN_INT,
    check_int,
    check_json,
    check_usage,
)


def nested(levels: int, key: str, inside: Any) -> Any:
    for _ in range(levels):
        inside = {key: inside}
    return inside


def test_a_long_key_above_many_values_is_refused_at_once() -> None:
    value = {"k" * 800_000: [0] * 300_000}  # 8 s of CPU when a path was built per value
    started = time.process_time()
    with pytest.raises(InvalidInputError, match="has a key 800000 characters long"):
        check_json(value, "metadata")
    assert time.process_time() - started < 0.5


def test_checking_is_linear_however_long_the_keys_and_deep_the_nesting() -> None:
    value = nested(MAX_JSON_DEPTH - 1, "k" * MAX_JSON_KEY_LENGTH, [0] * (MAX_JSON_ITEMS // 2))
    started = time.process_time()
    check_json(value, "metadata")
    with pytest.raises(InvalidInputError, match=r"\[49999\] holds an integer outside"):
        check_json(nested(MAX_JSON_DEPTH - 1, "k", [0] * 49_999 + [2**64]), "metadata")
    assert time.process_time() - started < 0.5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1, {"b": "\ud800"}]}, r"^content\.a\[1\]\.b contains a lone surrogate"),
        ([{"k": 1}, {"k": "x\x00"}], r"^content\[1\]\.k contains a NUL"),
        ({"a": [0, MAX_INT + 1]}, r"^content\.a\[1\] holds an integer outside"),
        ({"a": {"b": {1: 2}}}, r"^content\.a\.b has a key 1 of type int"),
        ({"a": {"\udc80": 2}}, r"^content\.a has a key that contains a lone surrogate"),
        ({"a": ["k" * 5, {"k" * 2000: 1}]}, r"^content\.a\[1\] has a key 2000 characters long"),
        ({"a": float("-inf")}, r"^content\.a holds -inf, which is not valid JSON"),
        ([(1, 2)], r"^content\[0\] holds a tuple, which is not JSON-serializable"),
        ([[0] * MAX_JSON_ITEMS, 1], r"^content has more than 100000 members in all"),
        # long lists of one type are checked as a whole first, then one by one to say where
        ([0.5] * 20 + [float("nan")], r"^content\[20\] holds nan"),
        ({"v": [1] * 20 + [MIN_INT - 1]}, r"^content\.v\[20\] holds an integer outside"),
        (["a"] * 30 + ["\udfff"], r"^content\[30\] contains a lone surrogate"),
        (["é"] * 30 + ["\x00"], r"^content\[30\] contains a NUL"),
    ],
)
def test_a_problem_is_reported_with_its_place(value: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_json(value, "content")


def test_the_limits_themselves_are_accepted() -> None:
    deepest: Any = "end"
    for _ in range(MAX_JSON_DEPTH):
        deepest = [deepest]
    check_json(deepest, "content")
    with pytest.raises(InvalidInputError, match="nested more than 100 levels deep"):
        check_json([deepest], "content")
    check_json({"k" * MAX_JSON_KEY_LENGTH: [MIN_INT, MAX_INT]}, "content")
    check_json([0] * (MAX_JSON_ITEMS - 1), "content")
    check_json([[True] * 20, [None] * 20, ["日本"] * 20, [1.5] * 20, [MIN_INT] * 20], "content")


def test_a_long_way_to_a_problem_is_cut_to_its_end() -> None:
    value = nested(MAX_JSON_DEPTH - 1, "key", "\x00")
    with pytest.raises(InvalidInputError) as refused:
        check_json(value, "metadata")
    assert refused.value.message.startswith("metadata....key.key.key")
    assert len(refused.value.message) < 300


def test_subclasses_of_json_types_are_checked_as_their_base() -> None:
    class Tokens(int):
        pass

    class Fields(dict[str, Any]):
        pass

    check_json(Fields(n=Tokens(3), text="ok"), "metadata")
    with pytest.raises(InvalidInputError, match=r"metadata\.n holds an integer outside"):
        check_json(Fields(n=Tokens(2**64)), "metadata")


def test_shared_and_circular_values_are_bounded() -> None:
    shared = [0] * 1000
    with pytest.raises(InvalidInputError, match="members in all"):
        check_json([shared] * 101, "content")  # counted each time it is met
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidInputError, match="nested more than"):
        check_json(loop, "content")


@pytest.mark.parametrize("value", [-1, MAX_INT + 1, True, 1.0, "1", None])
def test_check_int_refuses_what_is_not_a_stored_integer(value: object) -> None:
    with pytest.raises(InvalidInputError, match="seq must be an integer from 0 to"):
        check_int(value, "seq")


def test_check_int_bounds() -> None:
    assert check_int(MAX_INT, "n") == MAX_INT
    assert check_int(None, "n", optional=True) is None
    assert check_int(-5, "n", low=-10, high=0) == -5


def test_a_usage_record_is_checked_like_a_mapping() -> None:
    kept = Usage(prompt_tokens=MAX_INT, model="gpt")
    assert check_usage(kept) is kept
    assert check_usage({"completion_tokens": 1}) == Usage(completion_tokens=1)
    for bad in (Usage(model="\ud800"), Usage(prompt_tokens=MAX_INT + 1), Usage(model="a\x00")):
        with pytest.raises(InvalidInputError, match="usage"):
            check_usage(bad)


def test_a_search_cursor_past_64_bits_is_refused() -> None:
    assert read_cursor(make_cursor(MAX_INT, "token"), "token") == MAX_INT
    with pytest.raises(InvalidInputError, match="not a cursor returned by search"):
        read_cursor(make_cursor(MAX_INT + 1, "token"), "token")
