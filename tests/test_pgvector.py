"""pgvector: on a server that has it, semantic search goes through an HNSW index and
finds what the exact search finds; on one without it (PostgreSQL 15 here), the exact
search serves and nothing else changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import convstore
from convstore import ConversationStore
from convstore.search.embedding import HashingEmbedder, as_vectors
from tests.conftest import backend_url
from tests.test_postgres_plans import queries_of, scans

WORDS = [
    "deploy",
    "service",
    "production",
    "bread",
    "flour",
    "water",
    "river",
    "mountain",
    "code",
    "review",
    "test",
]


def texts(count: int) -> list[str]:
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(WORDS, size=4)) + f" note{i}" for i in range(count)]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConversationStore]:
    url = backend_url("postgres", tmp_path_factory.mktemp("pgvector"))
    with convstore.open(url, embedder=HashingEmbedder(64)) as store:
        chat = store.create_conversation("many").id
        store.append_messages(chat, [{"role": "user", "content": t} for t in texts(3000)])
        yield store


def exact(store: ConversationStore, query: str, k: int) -> list[str]:
    embedder = store.config.embedder
    assert embedder is not None
    messages = store.get_messages(store.list_conversations()[0].id)
    matrix = np.array(as_vectors(embedder, [str(m.content) for m in messages]))
    scores = matrix @ np.array(as_vectors(embedder, [query])[0])
    best = np.argsort(-scores, kind="stable")[:k]
    return [messages[i].id for i in best]


def test_the_server_with_pgvector_searches_through_hnsw(indexed: ConversationStore) -> None:
    assert indexed._backend._flavor.has_vectors  # type: ignore[attr-defined]
    with queries_of(indexed) as captured:
        hits = indexed.search("deploy the service to production", mode="semantic", limit=10).hits
    nearest = [(q, p) for q, p in captured if "<=>" in q]
    assert len(nearest) == 1
    plan = scans(indexed, *nearest[0])
    assert any(s.startswith("Index Scan on embeddings") for s in plan), plan
    found = [h.message.id for h in hits if h.message is not None]
    expected = exact(indexed, "deploy the service to production", 10)
    assert found[0] == expected[0]
    assert len(set(found) & set(expected)) >= 9  # an approximate index: near enough


def test_filters_still_apply_through_the_index(indexed: ConversationStore) -> None:
    chat = indexed.create_conversation("small").id
    mine = indexed.append_message(chat, "assistant", "bread flour water")
    hits = indexed.search("bread flour", mode="semantic", conversation_id=chat, limit=5).hits
    assert [h.message.id for h in hits if h.message is not None] == [mine.id]
    by_role = indexed.search("bread flour", mode="semantic", filters={"role": "assistant"}).hits
    assert [h.message.id for h in by_role if h.message is not None] == [mine.id]


def test_a_server_without_pgvector_searches_exactly(tmp_path: Path) -> None:
    url = backend_url("postgres15", tmp_path)
    with convstore.open(url, embedder=HashingEmbedder(64)) as store:
        assert not store._backend._flavor.has_vectors  # type: ignore[attr-defined]
        chat = store.create_conversation("c").id
        store.append_messages(chat, [{"role": "user", "content": t} for t in texts(200)])
        with queries_of(store) as captured:
            hits = store.search("bread flour water", mode="semantic", limit=5).hits
        assert not [q for q, _ in captured if "<=>" in q]
        assert [h.message.id for h in hits if h.message is not None] == exact(
            store, "bread flour water", 5
        )
