"""export_conversation / import_conversation: whole records, moved without change."""

from __future__ import annotations

from pathlib import Path

import pytest

import convstore
from convstore import ConcurrencyError, ConversationStore, InvalidInputError


def filled(store: ConversationStore) -> str:
    chat = store.create_conversation("records", metadata={"k": [1, 2]}, owner_id="u1").id
    question = store.append_message(chat, "user", "q", usage={"prompt_tokens": 3})
    store.append_message(chat, "assistant", {"answer": "a"}, metadata={"m": True})
    store.append_message(chat, "user", "q2")
    store.delete_message(chat, question.id)
    return chat


def test_round_trip_into_another_store(store: ConversationStore, tmp_path: Path) -> None:
    chat = filled(store)
    exported = store.export_conversation(chat)
    assert exported is not None
    conversation, messages = exported
    assert [m.seq for m in messages] == [2, 3]
    with convstore.open(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        copy.import_conversation(conversation, messages)
        assert copy.export_conversation(chat) == exported
        assert copy.get_messages(chat) == store.get_messages(chat)
        with pytest.raises(ConcurrencyError, match="already exists"):
            copy.import_conversation(conversation, messages)
        copy.append_message(chat, "assistant", "new")  # seq continues after the import
        copy.import_conversation(conversation, messages, replace=True)
        assert copy.export_conversation(chat) == exported
        assert copy.check_integrity() == []
    assert store.export_conversation("missing") is None


def test_inconsistent_records_are_refused(store: ConversationStore) -> None:
    chat = filled(store)
    exported = store.export_conversation(chat)
    assert exported is not None
    conversation, messages = exported
    store.delete_conversation(chat)
    bad_cases = [
        (conversation.model_copy(update={"message_count": 5}), messages, "message_count"),
        (conversation, [messages[0], messages[0]], "repeat"),
        (conversation, [messages[0].model_copy(update={"seq": 99})], "seq"),
        (conversation, [messages[1].model_copy(update={"parent_id": "nope"})], "parent"),
        (conversation.model_copy(update={"head_message_id": "nope"}), messages, "head"),
        (conversation, [messages[0].model_copy(update={"conversation_id": "x"})], "another"),
    ]
    for record, records, problem in bad_cases:
        with pytest.raises(InvalidInputError, match=problem):
            store.import_conversation(record, records)
    assert store.count_conversations() == 0


def test_message_ids_stay_unique_across_the_store(store: ConversationStore) -> None:
    chat = filled(store)
    exported = store.export_conversation(chat)
    assert exported is not None
    conversation, messages = exported
    twin = conversation.model_copy(update={"id": "twin"})
    copies = [m.model_copy(update={"conversation_id": "twin"}) for m in messages]
    with pytest.raises(ConcurrencyError, match="already used"):
        store.import_conversation(twin, copies)
    assert store.get_conversation("twin") is None
