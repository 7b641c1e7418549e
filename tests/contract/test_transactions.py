"""transaction(conversation_id): all of the block's writes, or none of them."""

from __future__ import annotations

import pytest

from convstore import ConversationNotFoundError, ConversationStore


class BoomError(Exception):
    pass


def test_commit_keeps_every_write(store: ConversationStore) -> None:
    chat = store.create_conversation("t").id
    with store.transaction(chat):
        first = store.append_message(chat, "user", "q")
        store.append_message(chat, "assistant", "a")
        store.update_message(chat, first.id, content="q, edited")
        assert [m.content for m in store.get_messages(chat)] == [
            "q, edited",
            "a",
        ]  # sees its own writes
        with store.transaction(chat):  # nested: joins the outer one
            store.update_conversation(chat, name="renamed")
    assert [m.content for m in store.get_messages(chat)] == ["q, edited", "a"]
    assert store.get_conversation(chat).name == "renamed"  # type: ignore[union-attr]


def test_error_rolls_everything_back(store: ConversationStore) -> None:
    chat = store.create_conversation("t").id
    store.append_message(chat, "user", "kept")
    before = (store.get_conversation(chat), store.get_messages(chat))
    with pytest.raises(BoomError), store.transaction(chat):
        store.append_message(chat, "assistant", "lost")
        store.update_conversation(chat, name="lost")
        store.delete_message(chat, before[1][0].id)
        raise BoomError
    assert (store.get_conversation(chat), store.get_messages(chat)) == before
    assert store.check_integrity() == []


def test_transaction_on_missing_conversation(store: ConversationStore) -> None:
    with pytest.raises(ConversationNotFoundError), store.transaction("missing"):
        pytest.fail("the block must not run")
