"""Substring matching that ignores ASCII case, the same rule SQL's LIKE applies.

Keeping Python's rule identical to the database's means a backend can narrow the
candidates in SQL and the store can confirm them here without disagreeing.
"""

from __future__ import annotations

import string

from convstore.validation import text_values

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(text: str) -> str:
    """``text`` with ASCII letters lower-cased and everything else unchanged."""
    return text.translate(_ASCII_LOWER)


def text_matches(content: object, query: str) -> bool:
    """True if any string inside ``content`` (keys excluded) contains ``query``."""
    needle = fold(query)
    return any(needle in fold(text) for text in text_values(content))
