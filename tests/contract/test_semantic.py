"""Semantic and hybrid search: vectors kept in step with messages, nearest found first."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

import convstore
from convstore import ConfigurationError, ConversationStore, InvalidInputError
from convstore.search.embedding import HashingEmbedder, nearest


@pytest.fixture
def semantic(store_url: str) -> Iterator[ConversationStore]:
    with convstore.open(store_url, embedder=HashingEmbedder(128)) as opened:
        yield opened


def ids(store: ConversationStore, query: str, **options: object) -> list[str]:
    hits = store.search(query, mode="semantic", **options).hits  # type: ignore[arg-type]
    return [h.message.id for h in hits if h.message is not None]


def test_nearest_message_comes_first(semantic: ConversationStore) -> None:
    chat = semantic.create_conversation("s").id
    deploy = semantic.append_message(chat, "user", "how do I deploy the service to production")
    cook = semantic.append_message(chat, "user", "a recipe for bread with flour and water")
    tool = semantic.append_message(chat, "assistant", {"tool": "deploy", "args": ["service"]})
    found = ids(semantic, "how to deploy to production")
    assert found[0] == deploy.id and cook.id not in found  # unrelated: below min_score
    everything = ids(semantic, "how to deploy to production", min_score=-1)
    assert everything[0] == deploy.id and set(everything) == {deploy.id, cook.id, tool.id}
    assert ids(semantic, "bread flour")[0] == cook.id
    assert ids(semantic, "deploy service")[0] == tool.id  # the text inside content counts
    hits = semantic.search("how to deploy to production", mode="semantic", min_score=-1).hits
    assert all(h.score > 0.2 for h in semantic.search("deploy", mode="semantic").hits)
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert -1.0 <= hits[-1].score <= hits[0].score <= 1.0 + 1e-6


def test_vectors_follow_edits_and_deletes(semantic: ConversationStore) -> None:
    chat = semantic.create_conversation("s").id
    first = semantic.append_message(chat, "user", "kubernetes cluster upgrade")
    other = semantic.append_message(chat, "user", "a picnic in the park")
    assert ids(semantic, "kubernetes cluster")[0] == first.id
    semantic.update_message(chat, first.id, content="sunny picnic in the park")
    after = {
        h.message.id: h.score
        for h in semantic.search("kubernetes cluster", mode="semantic").hits
        if h.message
    }
    assert after[first.id] < 0.5  # the old text's vector is gone
    assert ids(semantic, "sunny picnic")[0] == first.id
    assert other.id in ids(semantic, "sunny picnic")
    semantic.delete_message(chat, first.id)
    assert first.id not in ids(semantic, "sunny picnic")
    semantic.delete_conversation(chat)
    assert ids(semantic, "picnic") == []


def test_filters_scope_and_paging(semantic: ConversationStore) -> None:
    a = semantic.create_conversation("a").id
    b = semantic.create_conversation("b").id
    in_a = [semantic.append_message(a, "user", f"release notes {i}").id for i in range(5)]
    semantic.append_message(b, "assistant", "release notes in b")
    assert set(ids(semantic, "release notes", conversation_id=a)) == set(in_a)
    assert ids(semantic, "release notes", filters={"role": "assistant"}) != []
    assert all(
        h.message is not None and h.message.role.value == "assistant"
        for h in semantic.search("release", mode="semantic", filters={"role": "assistant"}).hits
    )
    first = semantic.search("release notes", mode="semantic", limit=4)
    second = semantic.search("release notes", mode="semantic", limit=4, cursor=first.next_cursor)
    seen = [h.message.id for h in first.hits + second.hits if h.message]
    assert len(seen) == len(set(seen)) == 6 and second.next_cursor is None


def test_hybrid_fuses_words_and_meaning(semantic: ConversationStore) -> None:
    chat = semantic.create_conversation("h").id
    exact = semantic.append_message(chat, "user", "error code E1234 in the payment worker")
    related = semantic.append_message(chat, "user", "payment worker crashes with an error")
    semantic.append_message(chat, "user", "lunch menu for friday")
    hybrid = semantic.search("E1234 payment worker error", mode="hybrid").hits
    assert [h.message.id for h in hybrid[:2] if h.message] == [exact.id, related.id]
    assert "«E1234»" in hybrid[0].snippet.marked()


def test_backfill_embeds_what_was_written_before(store_url: str) -> None:
    with convstore.open(store_url, embedder=HashingEmbedder(128), embed_on_append=False) as store:
        chat = store.create_conversation("old").id
        store.append_messages(chat, [{"role": "user", "content": f"note {i}"} for i in range(7)])
        assert ids(store, "note") == []
        progress: list[int] = []
        assert store.embed_missing(batch_size=3, on_progress=progress.append) == 7
        assert progress == [3, 6, 7]
        assert len(ids(store, "note 3")) == 7
        assert store.embed_missing() == 0


def test_semantic_search_needs_an_embedder_and_sane_input(
    store: ConversationStore, semantic: ConversationStore
) -> None:
    with pytest.raises(ConfigurationError, match="embedder"):
        store.search("anything", mode="semantic")
    with pytest.raises(ConfigurationError, match="embedder"):
        store.embed_missing()
    with pytest.raises(InvalidInputError, match="finds messages"):
        semantic.search("x", mode="semantic", target="conversations")
    with pytest.raises(InvalidInputError, match="mode"):
        semantic.search("x", mode="vibes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        semantic.search("   ", mode="semantic")


class BrokenEmbedder:
    name = "broken"
    dimensions = 4

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 2.0] for _ in texts]


def test_an_embedder_returning_bad_vectors_changes_nothing(store_url: str) -> None:
    with convstore.open(store_url, embedder=BrokenEmbedder()) as store:
        chat = store.create_conversation("c").id
        with pytest.raises(ConfigurationError, match="shape"):
            store.append_message(chat, "user", "hello")
        assert store.get_messages(chat) == []


def test_nearest_agrees_with_brute_force() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(500, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = matrix[42] + 0.01
    expected = np.argsort(-(matrix @ query))[:10]
    assert [row for row, _ in nearest(matrix, query, 10)] == list(expected)
    assert nearest(matrix[:0], query, 5) == []


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_a_users_view_finds_only_their_messages_by_meaning(
    semantic: ConversationStore, mode: str
) -> None:
    alice, bob = semantic.for_user("alice"), semantic.for_user("bob")
    mine = alice.create_conversation("a").id
    alice.append_message(mine, "user", "deploy the service to production")
    theirs = bob.create_conversation("b").id
    bob.append_message(theirs, "user", "deploy the service to production today")
    found = alice.search("deploy service production", mode=mode).hits  # type: ignore[arg-type]
    assert [h.conversation_id for h in found] == [mine]
    assert len(semantic.search("deploy service production", mode=mode).hits) == 2  # type: ignore[arg-type]


def test_the_similarity_floor_is_checked(semantic: ConversationStore) -> None:
    for bad in (2, -1.5, "0.3", True):
        with pytest.raises(InvalidInputError, match="min_score"):
            semantic.search("x", mode="semantic", min_score=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="semantic_min_score"):
        convstore.open("memory://", semantic_min_score=1.5)
