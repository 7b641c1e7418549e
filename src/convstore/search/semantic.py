"""Semantic and hybrid ranking above the backends: vectors in, nearest messages out.

Backends only store vectors (``Session.put_embeddings``/``get_embeddings``); the
nearest-neighbour search is exact, a matrix product in NumPy over unit vectors, and the
matrix is kept between queries until the store's change feed moves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from convstore.models import Change
from convstore.search.embedding import Vector, nearest

RRF_K = 60  # the usual constant of reciprocal rank fusion
INCREMENTAL_LIMIT = 1_000  # more changes than this since the last search: read everything
_CACHED_MATRICES = 4


def to_bytes(vector: Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> Vector:
    return np.frombuffer(data, dtype="<f4")


def vector_text(data: bytes) -> str:
    """A stored vector in pgvector's text form, ``[0.1,0.2,...]`` (exact for float32)."""
    return "[" + ",".join(repr(float(x)) for x in from_bytes(data)) + "]"


class VectorSource(Protocol):
    """Where a VectorCache reads vectors from: one read unit of the store."""

    def read_all(self) -> list[tuple[str, bytes]]: ...
    def read_some(self, message_ids: Sequence[str]) -> list[tuple[str, bytes]]: ...
    def changes_since(self, mark: int, limit: int) -> list[Change]: ...


@dataclass
class _Matrix:
    """Vectors as rows of a buffer with room to grow, so appends do not copy it."""

    mark: int
    ids: list[str]
    buffer: Vector
    positions: dict[str, int]

    @classmethod
    def of(cls, mark: int, rows: Sequence[tuple[str, bytes]], dims: int) -> _Matrix:
        ids = [message_id for message_id, _ in rows]
        buffer = np.zeros((max(len(rows) * 2, 1024), dims), dtype=np.float32)
        buffer[: len(rows)] = _stack(rows, dims)
        return cls(mark, ids, buffer, {message_id: row for row, message_id in enumerate(ids)})

    @property
    def rows(self) -> Vector:
        return self.buffer[: len(self.ids)]

    def append(self, mark: int, rows: Sequence[tuple[str, bytes]]) -> _Matrix:
        """This matrix with ``rows`` added (a new buffer only when this one is full)."""
        count, dims = len(self.ids), self.buffer.shape[1]
        buffer = self.buffer
        if count + len(rows) > buffer.shape[0]:
            buffer = np.zeros((max((count + len(rows)) * 2, 1024), dims), dtype=np.float32)
            buffer[:count] = self.rows
        buffer[count : count + len(rows)] = _stack(rows, dims)
        ids = self.ids + [message_id for message_id, _ in rows]
        positions = dict(self.positions)
        positions.update((message_id, count + i) for i, (message_id, _) in enumerate(rows))
        return _Matrix(mark, ids, buffer, positions)


class VectorCache:
    """The vectors of recent searches as one matrix per filter, brought up to date by
    reading only the messages the change feed says were added, edited or deleted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._matrices: OrderedDict[Hashable, _Matrix] = OrderedDict()

    def nearest(
        self, key: Hashable, mark: int, source: VectorSource, query: Vector, k: int
    ) -> list[tuple[str, float]]:
        """The ``k`` stored vectors nearest ``query``: (message id, cosine), best first.
        ``mark`` is the store's newest change id: when it moved, the matrix is refreshed."""
        with self._lock:  # held while refreshing: appends write into a shared buffer
            cached = self._matrices.get(key)
            if cached is None or cached.mark != mark:
                cached = _refreshed(cached, mark, source, query.shape[0])
                self._matrices[key] = cached
                self._matrices.move_to_end(key)
                while len(self._matrices) > _CACHED_MATRICES:
                    self._matrices.popitem(last=False)
        if cached.rows.shape[1:] != query.shape:
            return []
        found = [(cached.ids[row], score) for row, score in nearest(cached.rows, query, k)]
        return sorted(found, key=lambda pair: (-round(pair[1], 6), pair[0]))  # ties by id


def _refreshed(cached: _Matrix | None, mark: int, source: VectorSource, dims: int) -> _Matrix:
    """``cached`` updated to ``mark``: only new vectors are read when messages were only
    added; any edit, deletion or larger change reads everything again."""
    if cached is not None:
        changes = source.changes_since(cached.mark, INCREMENTAL_LIMIT + 1)
        touched = _touched(changes) if len(changes) <= INCREMENTAL_LIMIT else None
        if touched is not None and not touched & cached.positions.keys():
            fresh = source.read_some(sorted(touched)) if touched else []
            return cached.append(mark, fresh)
    return _Matrix.of(mark, source.read_all(), dims)


# changes that leave every vector as it was
_NO_VECTORS = frozenset(
    {"conversation.created", "conversation.updated", "state.changed", "chunks.appended"}
)


def _touched(changes: Sequence[Change]) -> set[str] | None:
    """The message ids whose vectors the changes may have added, replaced or removed;
    None when a change (a deleted or imported conversation) calls for a full reload."""
    touched: set[str] = set()
    for change in changes:
        if change.kind in ("messages.appended", "messages.deleted", "messages.embedded"):
            touched.update(change.payload.get("message_ids", ()))
        elif change.kind == "message.updated":
            touched.add(change.payload["message_id"])
        elif change.kind not in _NO_VECTORS:
            return None
    return touched


def _stack(rows: Sequence[tuple[str, bytes]], dims: int) -> Vector:
    if not rows:
        return np.zeros((0, dims), dtype=np.float32)
    return np.vstack([from_bytes(vector) for _, vector in rows])


def fuse(rankings: Sequence[Sequence[str]]) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each id scores the sum of 1 / (RRF_K + rank) over the
    rankings it appears in; best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
