"""Conversation CRUD, listing and filters: the same behaviour on every backend."""

from __future__ import annotations

import time

import pytest

from convstore import ConcurrencyError, ConversationStore


def test_create_and_get_round_trip(store: ConversationStore) -> None:
    created = store.create_conversation(
        "代码重构讨论", description="关于架构", metadata={"project": {"name": "x"}, "n": 1}
    )
    fetched = store.get_conversation(created.id)
    assert fetched == created
    assert fetched.name == "代码重构讨论"
    assert fetched.metadata == {"project": {"name": "x"}, "n": 1}
    assert fetched.version == 1
    assert fetched.message_count == 0
    assert isinstance(fetched.created_at, float)
    assert abs(fetched.created_at - time.time()) < 60


def test_missing_conversation_getters_return_none_or_false(store: ConversationStore) -> None:
    assert store.get_conversation("nope") is None
    assert store.update_conversation("nope", name="x") is None
    assert store.delete_conversation("nope") is False


def test_ids_are_unique_and_time_sortable(store: ConversationStore) -> None:
    ids = [store.create_conversation(f"c{i}").id for i in range(20)]
    assert len(set(ids)) == 20
    assert ids == sorted(ids)


def test_caller_chosen_id_and_duplicate(store: ConversationStore) -> None:
    store.create_conversation("a", conversation_id="my-chat_1")
    assert store.get_conversation("my-chat_1") is not None
    with pytest.raises(ConcurrencyError):
        store.create_conversation("b", conversation_id="my-chat_1")
    assert store.get_conversation("my-chat_1").name == "a"  # type: ignore[union-attr]


def test_create_with_initial_messages(store: ConversationStore) -> None:
    chat = store.create_conversation(
        "x",
        initial_messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
    )
    assert chat.message_count == 2
    assert [m.role.value for m in store.get_messages(chat.id)] == ["system", "user"]
    assert store.get_conversation(chat.id) == chat


def test_update_changes_only_given_fields_and_bumps_version(store: ConversationStore) -> None:
    chat = store.create_conversation("old", description="d", metadata={"a": 1})
    updated = store.update_conversation(chat.id, name="new")
    assert updated is not None
    assert (updated.name, updated.description, updated.metadata) == ("new", "d", {"a": 1})
    assert updated.version == chat.version + 1
    assert updated.updated_at >= chat.updated_at
    assert store.get_conversation(chat.id) == updated
    replaced = store.update_conversation(chat.id, metadata={"b": 2})
    assert replaced is not None and replaced.metadata == {"b": 2}


def test_update_with_nothing_to_change_writes_nothing(store: ConversationStore) -> None:
    chat = store.create_conversation("x")
    assert store.update_conversation(chat.id) == chat
    assert store.get_conversation(chat.id) == chat


def test_delete_removes_conversation_and_messages(store: ConversationStore) -> None:
    chat = store.create_conversation("x")
    message = store.append_message(chat.id, "user", "hi")
    other = store.create_conversation("y")
    store.append_message(other.id, "user", "kept")
    assert store.delete_conversation(chat.id) is True
    assert store.get_conversation(chat.id) is None
    assert store.get_message(chat.id, message.id) is None
    assert store.search_messages("hi") == []
    assert store.count_messages() == 1
    assert store.delete_conversation(chat.id) is False
    assert store.check_integrity() == []


def test_deleted_id_can_be_reused_without_stale_reads(store: ConversationStore) -> None:
    store.create_conversation("first", conversation_id="same")
    store.append_message("same", "user", "old message")
    assert [m.content for m in store.get_messages("same")] == ["old message"]
    store.delete_conversation("same")
    store.create_conversation("second", conversation_id="same")
    store.append_message("same", "user", "new message")
    assert [m.content for m in store.get_messages("same")] == ["new message"]


def test_list_orders_by_updated_at_and_pages(store: ConversationStore) -> None:
    chats = [store.create_conversation(f"c{i}") for i in range(5)]
    store.append_message(chats[1].id, "user", "bump")
    listed = [c.id for c in store.list_conversations()]
    assert listed[0] == chats[1].id
    assert set(listed) == {c.id for c in chats}
    assert [c.id for c in store.list_conversations(limit=2, offset=1)] == listed[1:3]
    assert store.list_conversations(limit=0) == []
    oldest_first = [c.id for c in store.list_conversations(order_by="created_at", descending=False)]
    assert oldest_first == [c.id for c in chats]
    by_name = [c.name for c in store.list_conversations(order_by="name", descending=False)]
    assert by_name == sorted(by_name)


def test_list_filters(store: ConversationStore) -> None:
    a = store.create_conversation("a", owner_id="alice", metadata={"team": {"name": "x"}, "n": 1})
    time.sleep(0.01)
    boundary = time.time()
    time.sleep(0.01)
    b = store.create_conversation(
        "b", owner_id="bob", metadata={"team": {"name": "y"}, "flag": True}
    )
    c = store.create_conversation("c", metadata={"score": 1.5, "none": None})

    def ids(**filters: object) -> set[str]:
        return {conv.id for conv in store.list_conversations(filters=filters)}

    assert ids(owner_id="alice") == {a.id}
    assert ids(conversation_ids=[a.id, c.id]) == {a.id, c.id}
    assert ids(created_after=boundary) == {b.id, c.id}
    assert ids(created_before=boundary) == {a.id}
    assert ids(updated_after=boundary) == {b.id, c.id}
    assert ids(metadata={"team.name": "y"}) == {b.id}
    assert ids(metadata={"n": 1}) == {a.id}
    assert ids(metadata={"flag": True}) == {b.id}
    assert ids(metadata={"score": 1.5}) == {c.id}
    assert ids(owner_id="alice", metadata={"team.name": "y"}) == set()
    assert store.count_conversations({"owner_id": "bob"}) == 1
    assert store.count_conversations() == 3
