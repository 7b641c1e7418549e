"""Text as the full-text index sees it: folded, and cut into terms that work for
languages with and without spaces.

Words of alphabetic scripts become one term each, lower-cased with accents removed.
Chinese and Japanese are written without spaces, so runs of their characters become
overlapping two-character terms (代码重构 -> 代码 码重 重构, a phrase) plus single-
character terms kept apart, so that a query of one or two characters is found too (a
trigram index misses both).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# Han ideographs (with extensions and compatibility forms), kana, and the iteration mark
_CJK = (
    "\u3005\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
)
_TOKEN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")
_CJK_RUN = re.compile(rf"[{_CJK}]+")


def fold(text: str) -> str:
    """Compatibility-normalized, case-folded, without accents: café -> cafe, full-width
    letters -> ASCII. Applying it twice changes nothing more."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class IndexText:
    """What the index stores for a text: the sequence of terms, and CJK single characters."""

    terms: str
    singles: str


def index_text(texts: Iterable[str]) -> IndexText:
    """The index form of some texts (e.g. every string inside a message)."""
    terms: list[str] = []
    singles: list[str] = []
    for text in texts:
        for cjk, word in _TOKEN.findall(fold(text)):
            if word:
                terms.append(word)
            else:
                terms.extend(bigrams(cjk))
                singles.extend(cjk)
    return IndexText(" ".join(terms), " ".join(singles))


def is_cjk(term: str) -> bool:
    """Whether an index term is Chinese or Japanese (a character or a character pair)."""
    return bool(_CJK_RUN.fullmatch(term))


def bigrams(run: str) -> list[str]:
    """Overlapping two-character terms of a CJK run (the run itself if it is one character)."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def query_terms(text: str) -> list[tuple[str, bool]]:
    """The index terms of a query word or phrase, each with whether it is a single CJK
    character (which lives among the singles)."""
    found: list[tuple[str, bool]] = []
    for cjk, word in _TOKEN.findall(fold(text)):
        if word:
            found.append((word, False))
        elif len(cjk) == 1:
            found.append((cjk, True))
        else:
            found.extend((b, False) for b in bigrams(cjk))
    return found
