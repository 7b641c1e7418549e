"""Soft deletion: gone from every view, restorable for the retention time."""

from __future__ import annotations

from pathlib import Path

import pytest

import convstore
from convstore import ConcurrencyError, ConversationNotFoundError, ConversationStore


def test_a_softly_deleted_conversation_comes_back_whole(store: ConversationStore) -> None:
    chat = store.create_conversation("c", metadata={"k": 1})
    store.append_messages(
        chat.id, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    )
    before = store.export_conversation(chat.id)
    assert store.delete_conversation(chat.id, soft=True)
    assert store.get_conversation(chat.id) is None
    assert store.list_conversations() == []
    assert store.search_messages("q") == []
    with pytest.raises(ConversationNotFoundError):
        store.get_messages(chat.id)
    restored = store.restore_conversation(chat.id)
    assert store.export_conversation(chat.id) == before
    assert restored == before[0]  # type: ignore[index]
    with pytest.raises(ConversationNotFoundError):
        store.restore_conversation(chat.id)


def test_a_hard_delete_cannot_be_undone(store: ConversationStore) -> None:
    chat = store.create_conversation("c")
    assert store.delete_conversation(chat.id)
    with pytest.raises(ConversationNotFoundError):
        store.restore_conversation(chat.id)
    assert not store.delete_conversation(chat.id, soft=True)


def test_only_the_owner_restores(store: ConversationStore) -> None:
    chat = store.for_user("alice").create_conversation("c")
    store.for_user("alice").delete_conversation(chat.id, soft=True)
    with pytest.raises(ConversationNotFoundError):
        store.for_user("bob").restore_conversation(chat.id)
    assert store.for_user("alice").restore_conversation(chat.id).owner_id == "alice"


def test_an_id_in_the_trash_is_not_reused(store: ConversationStore) -> None:
    chat = store.create_conversation("c")
    store.delete_conversation(chat.id, soft=True)
    with pytest.raises(ConcurrencyError, match="already exists"):
        store.create_conversation("new", conversation_id=chat.id)
    assert store.restore_conversation(chat.id).name == "c"


def test_another_user_cannot_touch_a_conversation_in_the_trash(store: ConversationStore) -> None:
    alice, bob = store.for_user("alice"), store.for_user("bob")
    chat = alice.create_conversation("hers", conversation_id="X")
    alice.delete_conversation(chat.id, soft=True)
    for chosen in ("X", chat.id):  # the id she chose, and the id it was stored under
        decoy = bob.create_conversation("his", conversation_id=chosen)
        assert decoy.id != chat.id
        assert bob.delete_conversation(decoy.id, soft=True)
        assert not bob.delete_conversation(chat.id)
    assert alice.restore_conversation(chat.id).name == "hers"


def test_a_message_id_used_again_blocks_the_restore(store: ConversationStore) -> None:
    chat = store.create_conversation("c", initial_messages=[{"role": "user", "content": "q"}])
    (message,) = store.get_messages(chat.id)
    store.delete_conversation(chat.id, soft=True)
    other = store.create_conversation("other")
    store.append_message(other.id, "user", "q", message_id=message.id)
    with pytest.raises(ConcurrencyError, match="message ids"):
        store.restore_conversation(chat.id)


def test_restoring_ends_with_the_retention_time(tmp_path: Path) -> None:
    with convstore.open(f"sqlite:///{tmp_path / 's.db'}", trash_retention=0) as store:
        chat = store.create_conversation("c")
        store.delete_conversation(chat.id, soft=True)
        with pytest.raises(ConversationNotFoundError):
            store.restore_conversation(chat.id)
