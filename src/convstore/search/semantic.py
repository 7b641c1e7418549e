"""Semantic and hybrid ranking above the backends: vectors in, nearest messages out.

Backends only store vectors (``Session.put_embeddings``/``get_embeddings``); the
nearest-neighbour search is exact, a matrix product in NumPy over unit vectors, and the
matrix is kept between queries until the store's change feed moves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from convstore.search.embedding import Vector, nearest

RRF_K = 60  # the usual constant of reciprocal rank fusion
_CACHED_MATRICES = 4


def to_bytes(vector: Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> Vector:
    return np.frombuffer(data, dtype="<f4")


class VectorCache:
    """The vectors of recent searches as one matrix, keyed by what they were read for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._matrices: OrderedDict[Hashable, tuple[list[str], Vector]] = OrderedDict()

    def nearest(
        self,
        key: Hashable,
        load: Callable[[], list[tuple[str, bytes]]],
        query: Vector,
        k: int,
    ) -> list[tuple[str, float]]:
        """The ``k`` stored vectors nearest ``query``: (message id, cosine), best first.
        ``load`` reads the vectors when ``key`` (which names the data's version) is new."""
        with self._lock:
            cached = self._matrices.get(key)
        if cached is None:
            rows = load()
            ids = [message_id for message_id, _ in rows]
            matrix = (
                np.vstack([from_bytes(v) for _, v in rows])
                if rows
                else np.zeros((0, query.shape[0]), dtype=np.float32)
            )
            cached = (ids, matrix)
            with self._lock:
                self._matrices[key] = cached
                while len(self._matrices) > _CACHED_MATRICES:
                    self._matrices.popitem(last=False)
        ids, matrix = cached
        if matrix.shape[1:] != query.shape:
            return []
        return [(ids[row], score) for row, score in nearest(matrix, query, k)]


def fuse(rankings: Sequence[Sequence[str]]) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each id scores the sum of 1 / (RRF_K + rank) over the
    rankings it appears in; best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
