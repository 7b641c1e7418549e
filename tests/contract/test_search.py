"""Substring search over names, descriptions and message text, with filters."""

from __future__ import annotations

import time

import pytest

from convstore import ConversationNotFoundError, ConversationStore, InvalidInputError


@pytest.fixture
def corpus(store: ConversationStore) -> dict[str, str]:
    refactor = store.create_conversation(
        "代码重构讨论", description="关于 AutoCoder 架构重构的讨论"
    )
    store.append_message(refactor.id, "user", "请帮我重构这段代码")
    store.append_message(
        refactor.id,
        "assistant",
        {"type": "code_suggestion", "code": "def f(): return 100%", "explanation": "Faster LOOP"},
        metadata={"lang": "python"},
    )
    cooking = store.create_conversation("Cooking", description="Recipes")
    store.append_message(cooking.id, "user", 'She said "loop the dough" \\ twice')
    store.append_message(cooking.id, "assistant", "Use 50_000 grams")
    return {"refactor": refactor.id, "cooking": cooking.id}


def test_search_conversations_by_name_and_messages(
    store: ConversationStore, corpus: dict[str, str]
) -> None:
    assert [c.id for c in store.search_conversations("重构")] == [corpus["refactor"]]
    assert [c.id for c in store.search_conversations("recipes")] == [corpus["cooking"]]
    found = {c.id for c in store.search_conversations("loop")}
    assert found == {corpus["refactor"], corpus["cooking"]}
    assert store.search_conversations("loop", search_in_messages=False) == []
    assert store.search_conversations("nothing-like-this") == []


def test_search_conversations_filters(store: ConversationStore, corpus: dict[str, str]) -> None:
    only = store.search_conversations("loop", filters={"conversation_ids": [corpus["cooking"]]})
    assert [c.id for c in only] == [corpus["cooking"]]
    assert store.search_conversations("loop", filters={"owner_id": "nobody"}) == []
    assert len(store.search_conversations("loop", limit=1)) == 1


def test_search_messages_matches_text_not_json(
    store: ConversationStore, corpus: dict[str, str]
) -> None:
    refactor = corpus["refactor"]
    assert [m.seq for m in store.search_messages("重构", conversation_id=refactor)] == [1]
    assert store.search_messages("code_suggestion", conversation_id=refactor) != []  # a value
    assert store.search_messages("explanation", conversation_id=refactor) == []  # a key
    assert store.search_messages('": "', conversation_id=refactor) == []  # JSON syntax
    assert len(store.search_messages("faster loop")) == 1  # ASCII case is ignored
    assert len(store.search_messages("100%")) == 1  # LIKE wildcards are literal
    assert len(store.search_messages("50_000")) == 1
    assert len(store.search_messages('"loop the dough" \\')) == 1  # quotes and backslashes
    assert len(store.search_messages("s")) == 3


def test_search_messages_filters(store: ConversationStore, corpus: dict[str, str]) -> None:
    assert {m.role.value for m in store.search_messages("s", filters={"role": "user"})} == {"user"}
    assert len(store.search_messages("s", filters={"role": ["user", "assistant"]})) == 3
    assert [
        m.metadata for m in store.search_messages("loop", filters={"metadata": {"lang": "python"}})
    ] == [{"lang": "python"}]
    assert store.search_messages("s", filters={"status": "retracted"}) == []
    assert store.search_messages("s", filters={"created_after": time.time() + 60}) == []
    scoped = store.search_messages(
        "s", conversation_id=corpus["refactor"], filters={"conversation_ids": [corpus["cooking"]]}
    )
    assert scoped == []
    assert len(store.search_messages("s", limit=2)) == 2
    assert len(store.search_messages("s", offset=2)) == 1


def test_search_errors(store: ConversationStore, corpus: dict[str, str]) -> None:
    with pytest.raises(ConversationNotFoundError):
        store.search_messages("x", conversation_id="missing")
    for bad in ("", "   ", None, 5):
        with pytest.raises(InvalidInputError):
            store.search_messages(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown message filter keys: colour"):
        store.search_messages("x", filters={"colour": "red"})
    with pytest.raises(InvalidInputError, match="unknown conversation filter keys"):
        store.search_conversations("x", filters={"role": "user"})


def test_edits_and_deletes_are_searchable(store: ConversationStore, corpus: dict[str, str]) -> None:
    message = store.search_messages("Use 50_000")[0]
    store.update_message(message.conversation_id, message.id, content="Use a kilo")
    assert store.search_messages("50_000") == []
    assert len(store.search_messages("kilo")) == 1
    store.delete_conversation(corpus["cooking"])
    assert store.search_messages("kilo") == []
