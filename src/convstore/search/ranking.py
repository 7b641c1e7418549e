"""BM25 in Python, for backends without a full-text engine of their own.

Scores follow the usual Okapi BM25 (k1 = 1.2, b = 0.75) over the documents given, so a
backend that scans its data ranks the way SQLite's FTS5 does, up to its corpus.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from convstore.search.query import SearchQuery

K1 = 1.2
B = 0.75

# A query matching more messages than this ranks only the most recent this many of them:
# ranking costs time in proportion to the matches, and in a chat history the newest
# matches of a very common word are the ones wanted. Rarer queries rank every match.
RANK_WINDOW = 5_000


def bm25(documents: Sequence[Sequence[str]], query: SearchQuery) -> list[float]:
    """A score per document (each a list of index terms); higher is better."""
    wanted = {token for term in query.required for token, _ in term.tokens}
    wanted.update(word for term in query.required for word in term.alternatives)
    counts = [Counter(t for t in document if t in wanted) for document in documents]
    total = len(documents)
    average = sum(len(d) for d in documents) / total if total else 0.0
    frequency = Counter(token for c in counts for token in c)
    scores = []
    for document, count in zip(documents, counts, strict=True):
        score = 0.0
        for token, tf in count.items():
            idf = math.log(1 + (total - frequency[token] + 0.5) / (frequency[token] + 0.5))
            norm = 1 - B + B * (len(document) / average if average else 1.0)
            score += idf * tf * (K1 + 1) / (tf + K1 * norm)
        scores.append(score)
    return scores
