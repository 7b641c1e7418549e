"""The search query language, parsed once and then matched, compiled or highlighted.

    refactor plan        both words must occur (any order, any case, accents ignored)
    "code review"        the words as a phrase, side by side
    -draft               no message containing draft
    deploy*              words starting with deploy
    *ploy*               words containing ploy (at least 3 letters or digits)
    重构                  Chinese and Japanese need no spaces; a query of 1 or 2
                         characters works too

A malformed query (an unclosed quote, a lone - or *, nothing searchable) raises
InvalidInputError; user text never reaches the index's own query syntax unquoted.

A word inside stars is looked up in the store's vocabulary before the query runs
(``SearchQuery.expanded``): it stands for the words that contain it, so every backend's
index matches it as an alternative of ordinary words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from convstore.errors import InvalidInputError
from convstore.search.text import fold, index_text, is_cjk, query_terms

_PIECE = re.compile(r'\s*(-?)(?:"([^"]*)"|([^\s"]+))')
MAX_TERMS = 32
MIN_FRAGMENT = 3  # the shortest *fragment*: shorter ones stand for too many words
MAX_EXPANSIONS = 100  # a *fragment* stands for at most this many words, the shortest


@dataclass(frozen=True)
class Term:
    """One word or phrase of a query."""

    text: str
    tokens: tuple[tuple[str, bool], ...]  # (index term, is a single CJK character)
    prefix: bool = False
    excluded: bool = False
    contains: bool = False  # *text*: any word containing the text
    # the words a contains-term stands for, found by SearchQuery.expanded
    alternatives: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: terms that must match and terms that must not."""

    source: str
    required: tuple[Term, ...]
    excluded: tuple[Term, ...]

    def matches(self, texts: Iterable[str]) -> bool:
        """Whether texts (e.g. the strings of one message) satisfy the query, by the
        same rules the index applies."""
        indexed = index_text(texts)
        return self.matches_terms(indexed.terms.split(), set(indexed.singles.split()))

    def matches_terms(self, terms: Sequence[str], singles: set[str]) -> bool:
        """Whether a text already cut into index terms satisfies the query."""
        return all(_has(terms, singles, t) for t in self.required) and not any(
            _has(terms, singles, t) for t in self.excluded
        )

    def fragments(self) -> list[str]:
        """The texts of *contains* terms, which the store looks up before searching."""
        return sorted({t.tokens[0][0] for t in (*self.required, *self.excluded) if t.contains})

    def expanded(self, words_containing: Callable[[str], Sequence[str]]) -> SearchQuery | None:
        """The query with each *contains* term standing for the words that contain its
        text (``words_containing(text)``, at most MAX_EXPANSIONS of them); None when a
        required one stands for no word, so nothing can match."""
        found = {fragment: frozenset(words_containing(fragment)) for fragment in self.fragments()}

        def resolve(term: Term) -> Term:
            if not term.contains:
                return term
            return replace(term, alternatives=found[term.tokens[0][0]])

        required = tuple(resolve(t) for t in self.required)
        if any(t.contains and not t.alternatives for t in required):
            return None
        excluded = tuple(
            resolve(t) for t in self.excluded if not t.contains or found[t.tokens[0][0]]
        )
        return SearchQuery(self.source, required, excluded)

    def fts5(self, terms_column: str, singles_column: str) -> str:
        """The query as an FTS5 MATCH expression over the two columns of the index."""
        required = " AND ".join(_fts5_term(t, terms_column, singles_column) for t in self.required)
        excluded = "".join(
            f" NOT {_fts5_term(t, terms_column, singles_column)}" for t in self.excluded
        )
        return f"({required}){excluded}"

    def needles(self) -> list[str]:
        """The folded words and CJK runs to highlight in snippets."""
        found: list[str] = []
        for term in self.required:
            found.extend(re.findall(r"\w+", fold(term.text)))
        return sorted(set(found), key=len, reverse=True)


def parse_query(text: object) -> SearchQuery:
    """Parse ``text``; InvalidInputError says what is wrong with a malformed query."""
    if not isinstance(text, str):
        raise InvalidInputError(f"query must be a string, not {type(text).__name__}")
    if not text.strip():
        raise InvalidInputError("query must not be empty")
    if len(text) > 1_000:
        raise InvalidInputError("query is longer than 1000 characters")
    if text.count('"') % 2:
        raise InvalidInputError(f'query {text!r} has an unclosed quote (")')
    pieces = [
        _term(excluded, phrase, word, text) for excluded, phrase, word in _PIECE.findall(text)
    ]
    terms = [t for t in pieces if t.tokens]  # pieces of punctuation alone are skipped
    if not terms:
        raise InvalidInputError(f"query {text!r} has no letters or digits to search for")
    if len(terms) > MAX_TERMS:
        raise InvalidInputError(f"query has {len(terms)} terms; the limit is {MAX_TERMS}")
    required = tuple(t for t in terms if not t.excluded)
    if not required:
        raise InvalidInputError(f"query {text!r} needs at least one term that must match")
    return SearchQuery(text, required, tuple(t for t in terms if t.excluded))


def _term(excluded: str, phrase: str, word: str, source: str) -> Term:
    is_phrase = not word
    body = phrase if is_phrase else word
    contains = not is_phrase and len(body) > 2 and body.startswith("*") and body.endswith("*")
    prefix = not is_phrase and not contains and body.endswith("*")
    body = body[1:-1] if contains else body[:-1] if prefix else body
    if "*" in body:
        raise InvalidInputError(
            f"in query {source!r}: * may only end a word (deploy*) or surround one (*ploy*)"
        )
    tokens = tuple(query_terms(body))
    if contains and tokens and all(single or is_cjk(t) for t, single in tokens):
        contains = False  # Chinese and Japanese text is matched inside words already
    if (prefix or contains) and tokens and (len(tokens) != 1 or tokens[0][1]):
        raise InvalidInputError(f"in query {source!r}: * needs a single word beside it")
    if contains and tokens and len(tokens[0][0]) < MIN_FRAGMENT:
        raise InvalidInputError(
            f"in query {source!r}: *{body}* is too short; a word inside stars needs at least "
            f"{MIN_FRAGMENT} letters or digits"
        )
    return Term(body, tokens, prefix=prefix, excluded=bool(excluded), contains=contains)


def _has(terms: Sequence[str], singles: set[str], term: Term) -> bool:
    sequence = [t for t, single in term.tokens if not single]
    if any(single and t not in singles for t, single in term.tokens):
        return False
    if not sequence:
        return True
    if term.contains:
        if term.alternatives:
            return any(t in term.alternatives for t in terms)
        return any(sequence[0] in t for t in terms)  # not expanded: the words themselves
    if term.prefix:
        return any(t.startswith(sequence[0]) for t in terms)
    width = len(sequence)
    return any(terms[i : i + width] == sequence for i in range(len(terms) - width + 1))


def _fts5_term(term: Term, terms_column: str, singles_column: str) -> str:
    """A term as FTS5 syntax. Tokens hold only letters and digits, so quoting is safe."""
    sequence = [t for t, single in term.tokens if not single]
    parts = [f'{singles_column} : "{t}"' for t, single in term.tokens if single]
    if term.contains:
        words = " OR ".join(f'"{w}"' for w in sorted(term.alternatives))
        parts.append(f"{terms_column} : ({words})")
    elif sequence:
        star = "*" if term.prefix else ""
        parts.append(f'{terms_column} : "{" ".join(sequence)}"{star}')
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"
