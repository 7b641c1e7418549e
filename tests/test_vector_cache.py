"""The vector matrix kept between semantic searches is refreshed exactly by the change feed."""

from __future__ import annotations

from pathlib import Path

import pytest

import convstore
from convstore import ConversationStore
from convstore.search.embedding import HashingEmbedder
from tests.conftest import SHARED_BACKENDS, backend_url


def ranking(store: ConversationStore, query: str) -> list[tuple[str, float]]:
    hits = store.search(query, mode="semantic", limit=50).hits
    return [(h.message.id, round(h.score, 5)) for h in hits if h.message is not None]


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_refreshed_matrix_equals_a_fresh_one(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    embedder = HashingEmbedder(64)
    with convstore.open(url, embedder=embedder) as store:
        chat = store.create_conversation("c").id
        first = store.append_message(chat, "user", "alpha beta gamma")
        store.append_message(chat, "user", "beta gamma delta")
        ranking(store, "beta")  # the matrix is now cached
        third = store.append_message(chat, "user", "gamma delta epsilon")  # added
        store.update_message(chat, first.id, content="zeta eta theta")  # replaced
        store.delete_message(chat, third.id)  # removed
        other = store.create_conversation("d").id
        store.append_messages(other, [{"role": "user", "content": f"beta {i}"} for i in range(3)])
        for query in ("beta", "zeta", "gamma delta"):
            with convstore.open(url, embedder=embedder) as fresh:  # nothing cached
                assert ranking(store, query) == ranking(fresh, query)
        exported = store.export_conversation(other)
        assert exported is not None
        store.import_conversation(*exported, replace=True)  # a full reload
        with convstore.open(url, embedder=embedder) as fresh:
            assert ranking(store, "beta") == ranking(fresh, "beta")
