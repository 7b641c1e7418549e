"""Stores filled with every kind of record an archive must carry, and their snapshots."""

from __future__ import annotations

from convstore import Conversation, ConversationStore, Message
from convstore.archive import iter_conversations

Snapshot = dict[str, tuple[Conversation, list[Message]]]


def fill(store: ConversationStore) -> list[str]:
    """Conversations with nested content, usage, metadata, gaps in seq, no messages, and
    a message tree that forks; their ids, oldest first."""
    rich = store.create_conversation(
        "代码重构讨论",
        description="多行\n描述",
        metadata={"a": {"b": [1, 2.5, None]}},
        owner_id="u1",
    )
    question = store.append_message(rich.id, "user", "请帮我重构 ✓")
    store.append_message(
        rich.id,
        "assistant",
        {"z": 1, "a": ["x", {"k": True}], "text": '引号 " 和 \\ 反斜杠'},
        metadata={"edited": False},
        usage={"prompt_tokens": 7, "completion_tokens": 11, "model": "m"},
    )
    store.append_message(rich.id, "user", [{"type": "text", "text": "list content"}])
    store.delete_message(rich.id, question.id)
    empty = store.create_conversation("empty")
    branched = _branched(store)
    return [rich.id, empty.id, branched]


def _branched(store: ConversationStore) -> str:
    """A conversation whose first message has two replies; the head is the second."""
    base = store.create_conversation("branched")
    store.append_message(base.id, "user", "root")
    store.append_message(base.id, "assistant", "first answer")
    exported = store.export_conversation(base.id)
    assert exported is not None
    conversation, messages = exported
    retry = messages[1].model_copy(
        update={"id": f"{messages[1].id}r", "seq": 3, "content": "second answer"}
    )
    store.import_conversation(
        conversation.model_copy(
            update={"last_seq": 3, "message_count": 3, "head_message_id": retry.id}
        ),
        [*messages, retry],
        replace=True,
    )
    return base.id


def snapshot(store: ConversationStore) -> Snapshot:
    """Every conversation of the store with all its messages, by id."""
    found: Snapshot = {}
    for conversation in iter_conversations(store):
        exported = store.export_conversation(conversation.id)
        assert exported is not None
        found[conversation.id] = exported
    return found
