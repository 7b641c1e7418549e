"""A conversation imported whole with several branches: only the path to its head is
the active branch, on every backend."""

from __future__ import annotations

from convstore import Conversation, ConversationStore, Message


def _message(cid: str, mid: str, parent: str | None, seq: int, role: str) -> Message:
    return Message.model_validate(
        {
            "id": mid,
            "conversation_id": cid,
            "parent_id": parent,
            "seq": seq,
            "role": role,
            "content": mid,
            "created_at": float(seq),
            "updated_at": float(seq),
        }
    )


def test_only_the_path_to_the_head_is_active(store: ConversationStore) -> None:
    cid = "forked"
    #   q1 -> a1 -> q2 -> a2       (the old answer's branch)
    #         a1 -> q2b -> a2b     (an edited question, the head)
    #   q1 -> a1x                  (a regenerated first answer)
    tree = [
        _message(cid, "q1", None, 1, "user"),
        _message(cid, "a1", "q1", 2, "assistant"),
        _message(cid, "q2", "a1", 3, "user"),
        _message(cid, "a2", "q2", 4, "assistant"),
        _message(cid, "a1x", "q1", 5, "assistant"),
        _message(cid, "q2b", "a1", 6, "user"),
        _message(cid, "a2b", "q2b", 7, "assistant"),
    ]
    conversation = Conversation.model_validate(
        {
            "id": cid,
            "name": "forked",
            "state": "active",
            "head_message_id": "a2b",
            "created_at": 1.0,
            "updated_at": 7.0,
            "version": 3,
            "message_count": len(tree),
            "last_seq": 7,
        }
    )
    store.import_conversation(conversation, tree)
    assert [m.id for m in store.get_messages(cid)] == ["q1", "a1", "q2b", "a2b"]
    assert [m.id for m in store.get_messages(cid, newest_first=True, limit=2)] == ["a2b", "q2b"]
    exported = store.export_conversation(cid)
    assert exported is not None and [m.id for m in exported[1]] == [m.id for m in tree]
    store.append_message(cid, "user", "next")
    assert [m.content for m in store.get_messages(cid)][-2:] == ["a2b", "next"]
    store.delete_conversation(cid, soft=True)
    store.restore_conversation(cid)
    assert [m.id for m in store.get_messages(cid)][:4] == ["q1", "a1", "q2b", "a2b"]
    assert store.check_integrity() == []
