"""Records built from stored values equal records built with full validation."""

from typing import Any

from convstore import Conversation, Message, Usage
from convstore.models import MessageStatus, Role


def test_from_stored_matches_validated_message() -> None:
    values: dict[str, Any] = {
        "id": "m1",
        "conversation_id": "c1",
        "parent_id": None,
        "seq": 1,
        "role": Role.ASSISTANT,
        "type": "text",
        "content": {"code": "print(1)"},
        "status": MessageStatus.COMPLETE,
        "sender_id": None,
        "created_at": 1.5,
        "updated_at": 1.5,
        "metadata": {"k": "v"},
        "usage": Usage(prompt_tokens=3, completion_tokens=4, model="m"),
    }
    stored = Message.from_stored(dict(values))
    assert stored == Message(**values)
    assert stored.model_dump() == Message(**values).model_dump()
    assert stored.model_copy(update={"seq": 2}).seq == 2
    assert stored.seq == 1


def test_from_stored_matches_validated_conversation() -> None:
    values: dict[str, Any] = {
        "id": "c1",
        "name": "n",
        "description": None,
        "owner_id": "u",
        "state": "active",
        "head_message_id": None,
        "created_at": 1.0,
        "updated_at": 2.0,
        "metadata": {},
        "version": 3,
        "message_count": 0,
        "last_seq": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
    }
    assert Conversation.from_stored(dict(values)) == Conversation(**values)
