"""Snippets: a short piece of the original text around the first match, with the
matched words located, so a UI can mark them however it likes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from convstore.search.query import SearchQuery
from convstore.search.text import fold

WIDTH = 160


@dataclass(frozen=True)
class Snippet:
    """``text`` with the matches at ``highlights`` (start, end) offsets into it."""

    text: str
    highlights: tuple[tuple[int, int], ...]

    def marked(self, start: str = "«", end: str = "»") -> str:
        """The snippet with each match wrapped in ``start`` and ``end``."""
        pieces, position = [], 0
        for begin, finish in self.highlights:
            pieces += [self.text[position:begin], start, self.text[begin:finish], end]
            position = finish
        pieces.append(self.text[position:])
        return "".join(pieces)


def snippet(texts: Iterable[str], query: SearchQuery | None, width: int = WIDTH) -> Snippet:
    """The best piece of ``texts`` to show for ``query``: the first text with a match,
    cut to about ``width`` characters around its first match (the start of the first
    text when nothing matches, or without a query)."""
    needles = [] if query is None else query.needles()
    texts = [t for t in texts if t]
    for text in texts:
        spans = _spans(text, needles)
        if spans:
            return _window(text, spans, width)
    first = texts[0] if texts else ""
    return Snippet(_cut(first, 0, width), ())


def _spans(text: str, needles: list[str]) -> list[tuple[int, int]]:
    """Where the needles occur in ``text`` (in original offsets), longest needle first."""
    folded, origin = _folded_with_origins(text)
    taken = [False] * len(folded)
    spans = []
    for needle in needles:
        start = folded.find(needle)
        while start != -1:
            end = start + len(needle)
            if not any(taken[start:end]):
                taken[start:end] = [True] * len(needle)
                spans.append((origin[start], origin[end - 1] + 1))
            start = folded.find(needle, end)
    return sorted(spans)


def _folded_with_origins(text: str) -> tuple[str, list[int]]:
    """``fold(text)`` and, for each of its characters, the index it came from."""
    pieces, origin = [], []
    for index, char in enumerate(text):
        folded = fold(char)
        pieces.append(folded)
        origin.extend([index] * len(folded))
    return "".join(pieces), origin


def _window(text: str, spans: list[tuple[int, int]], width: int) -> Snippet:
    first = spans[0][0]
    start = max(0, min(first - width // 3, len(text) - width))
    end = min(len(text), start + width)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    inside = tuple((b + shift, e + shift) for b, e in spans if b >= start and e <= end)
    return Snippet(prefix + text[start:end] + suffix, inside)


def _cut(text: str, start: int, width: int) -> str:
    return text[start : start + width] + ("…" if len(text) > start + width else "")
