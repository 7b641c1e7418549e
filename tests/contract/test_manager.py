"""PersistConversationManager: the seed specification's API, dicts in and out."""

from __future__ import annotations

import pytest

from convstore import InvalidInputError, PersistConversationManager

MESSAGE_FIELDS = {"role", "content", "timestamp", "message_id", "metadata"}
CONVERSATION_FIELDS = {
    "conversation_id",
    "name",
    "description",
    "created_at",
    "updated_at",
    "metadata",
    "version",
}


def test_seed_example_end_to_end(manager: PersistConversationManager) -> None:
    conv_id = manager.create_conversation(
        name="代码重构讨论", description="关于 AutoCoder 架构重构的讨论"
    )
    user_msg_id = manager.append_message(conv_id, role="user", content="请帮我重构这段代码")
    msg_id = manager.append_message(
        conv_id,
        role="assistant",
        content={
            "type": "code_suggestion",
            "language": "python",
            "code": "# 重构后的代码...",
            "explanation": "这样重构的原因是...",
        },
    )
    conversation = manager.get_conversation(conv_id)
    assert conversation is not None
    assert CONVERSATION_FIELDS | {"messages"} <= set(conversation)
    assert [m["message_id"] for m in conversation["messages"]] == [user_msg_id, msg_id]
    messages = manager.get_messages(conv_id, limit=10)
    assert all(set(m) >= MESSAGE_FIELDS for m in messages)
    assert messages[1]["content"]["type"] == "code_suggestion"
    assert messages[0]["timestamp"] == messages[0]["created_at"]
    assert messages[0]["role"] == "user" and isinstance(messages[0]["role"], str)

    assert manager.update_message(conv_id, msg_id, content="更新后的回复内容") is True
    assert manager.get_message(conv_id, msg_id)["content"] == "更新后的回复内容"  # type: ignore[index]
    results = manager.search_conversations("重构", search_in_messages=True)
    assert [r["conversation_id"] for r in results] == [conv_id]
    assert [m["message_id"] for m in manager.search_messages(conv_id, "更新")] == [msg_id]

    assert manager.delete_message_pair(conv_id, user_msg_id) is True
    assert manager.get_messages(conv_id) == []
    assert manager.delete_conversation(conv_id) is True
    assert manager.get_conversation(conv_id) is None


def test_missing_things(manager: PersistConversationManager) -> None:
    conv_id = manager.create_conversation("x")
    assert manager.get_conversation("missing") is None
    assert manager.get_message(conv_id, "missing") is None
    assert manager.update_conversation("missing", name="y") is False
    assert manager.delete_conversation("missing") is False
    assert manager.update_message(conv_id, "missing", content="y") is False
    assert manager.delete_message(conv_id, "missing") is False
    assert manager.delete_message_pair(conv_id, "missing") is False


def test_lists_counts_and_batches(manager: PersistConversationManager) -> None:
    first = manager.create_conversation("a", metadata={"kind": "demo"})
    second = manager.create_conversation(
        "b",
        initial_messages=[{"role": "system", "content": "s"}],
        conversation_id="b-1",
        owner_id="u1",
    )
    ids = manager.append_messages(
        first, [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]
    )
    assert len(ids) == 2
    assert [m["message_id"] for m in manager.get_messages(first, message_ids=[ids[1]])] == [ids[1]]
    assert [m["seq"] for m in manager.get_messages(first, newest_first=True, limit=1)] == [2]
    assert [
        c["conversation_id"]
        for c in manager.list_conversations(filters={"metadata": {"kind": "demo"}})
    ] == [first]
    assert len(manager.list_conversations(limit=1)) == 1
    assert manager.update_conversation(second, description="d") is True
    assert manager.get_conversations_count() == 2
    assert manager.get_conversations_count({"owner_id": "u1"}) == 1
    assert manager.get_total_messages_count() == 3
    assert manager.delete_message(first, ids[0]) is True
    assert manager.get_total_messages_count() == 2


def test_delete_pair_rejects_non_user_message(manager: PersistConversationManager) -> None:
    conv_id = manager.create_conversation("x")
    reply = manager.append_message(conv_id, "assistant", "a")
    with pytest.raises(InvalidInputError):
        manager.delete_message_pair(conv_id, reply)


def test_transaction_and_health(manager: PersistConversationManager) -> None:
    conv_id = manager.create_conversation("x")
    with pytest.raises(RuntimeError), manager.transaction(conv_id):
        manager.append_message(conv_id, "user", "lost")
        raise RuntimeError
    assert manager.get_messages(conv_id) == []
    with manager.transaction(conv_id):
        manager.append_message(conv_id, "user", "kept")
    health = manager.health_check()
    assert health["status"] == "healthy"
    assert (health["conversations_count"], health["total_messages"]) == (1, 1)
    assert {"disk_usage", "last_backup", "locks_status"} <= set(health)
    assert manager.get_disk_usage() == health["disk_usage"]


def test_retry_with_message_id(manager: PersistConversationManager) -> None:
    conv_id = manager.create_conversation("x")
    assert manager.append_message(conv_id, "user", "hi", message_id="m1") == "m1"
    assert manager.append_message(conv_id, "user", "hi", message_id="m1") == "m1"
    assert manager.get_total_messages_count() == 1


def test_returned_dicts_are_copies(manager: PersistConversationManager) -> None:
    conv_id = manager.create_conversation("x")
    manager.append_message(conv_id, "user", {"nested": {"k": [1]}})
    first = manager.get_messages(conv_id)
    first[0]["content"]["nested"]["k"].append(2)
    first[0]["metadata"]["x"] = 1
    assert manager.get_messages(conv_id)[0]["content"] == {"nested": {"k": [1]}}
    assert manager.get_messages(conv_id)[0]["metadata"] == {}
