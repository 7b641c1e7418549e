"""Hypothesis strategies for hostile input: JSON a client could send that a backend may
not be able to hold (lone surrogates, NUL, integers past 64 bits, NaN and the
infinities, deep nesting, long keys, many members), mixed with ordinary values."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from convstore.validation import MAX_INT, MAX_JSON_DEPTH, MAX_JSON_ITEMS, MAX_JSON_KEY_LENGTH

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.one_of(st.characters(), SURROGATES, st.just("\x00")), max_size=6),
    st.sampled_from(["\ud800", "a\udfffb", "\ud83d\ude00", "\x00", "x\x00", "日本語", ""]),
)
KEYS = st.one_of(
    TEXT,
    st.sampled_from(["k" * MAX_JSON_KEY_LENGTH, "k" * (MAX_JSON_KEY_LENGTH + 1)]),
)
INTEGERS = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from([MAX_INT, MAX_INT + 1, -MAX_INT - 1, -MAX_INT - 2, 2**70, -(10**30)]),
    st.integers(),
)
FLOATS = st.floats()  # NaN, the infinities, -0.0 and subnormals included
SCALARS = st.one_of(st.none(), st.booleans(), INTEGERS, FLOATS, TEXT)


def nested(levels: int) -> Any:
    """A list ``levels`` deep around a 1, either side of MAX_JSON_DEPTH."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


EXTREMES = st.one_of(
    st.integers(MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH + 2).map(nested),
    st.sampled_from([MAX_JSON_ITEMS - 1, MAX_JSON_ITEMS + 1]).map(lambda n: [0] * n),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=10,
)
OBJECTS = st.one_of(
    st.dictionaries(KEYS, st.one_of(JSON, EXTREMES), max_size=4),
    st.none(),
)
CONTENT = st.one_of(TEXT, st.lists(JSON, max_size=4), st.dictionaries(KEYS, JSON, max_size=4))
USAGE = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={"prompt_tokens": INTEGERS, "completion_tokens": INTEGERS, "model": TEXT},
    ),
)
ROLES = st.sampled_from(["user", "assistant", "system", "tool"])
MESSAGES = st.fixed_dictionaries(
    {"role": ROLES, "content": CONTENT},
    optional={"metadata": OBJECTS, "usage": USAGE, "type": TEXT},
)


def canonical(value: Any) -> str:
    """JSON text that tells 1 from 1.0 and -0.0 from 0.0, to compare what was written
    with what is read back exactly (keys sorted; order is not part of the data)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True, allow_nan=True)


def raw_json(value: Any) -> bytes:
    """``value`` as a request body a hostile client sends: lone surrogates escaped
    (``\\ud800``), NaN and Infinity written out, integers of any size."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode("ascii")
