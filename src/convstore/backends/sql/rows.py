"""Rows and records: which columns the SQL backend reads each record from, how those rows
become Conversation, Message and Chunk records, and how records become the rows (and
full-text index rows) it writes.

Kept apart from the statements and the session so that the mapping between the schema
and the models lives in one place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from convstore.backends.sql.schema import conversations, message_chunks, messages
from convstore.errors import DataIntegrityError
from convstore.models import Chunk, Conversation, Message, MessageStatus, Role, Usage
from convstore.search.text import index_text
from convstore.validation import text_values

MESSAGE_COLUMNS = [column for column in messages.c if column.key != "active"]

CONVERSATION_COLUMNS = [column for column in conversations.c if column.key != "deleted_at"]
_CONVERSATION_FIELDS = [
    "metadata" if column.key == "meta" else column.key for column in CONVERSATION_COLUMNS
]

_CHUNK_FIELDS = ["message_id", "seq", "delta", "created_at"]
CHUNK_COLUMNS = [message_chunks.c[name] for name in _CHUNK_FIELDS]

_ROLES = {role.value: role for role in Role}
_STATUSES = {status.value: status for status in MessageStatus}


def to_conversation(row: Sequence[Any]) -> Conversation:
    """A Conversation from a row of CONVERSATION_COLUMNS."""
    return Conversation.from_stored(dict(zip(_CONVERSATION_FIELDS, row, strict=True)))


def to_message(row: Sequence[Any]) -> Message:
    """A Message from a row of MESSAGE_COLUMNS (by position: this runs for every row)."""
    (id_, conversation_id, parent_id, seq, role, type_, content, status, sender_id) = row[:9]
    try:
        return Message.from_stored(
            {
                "id": id_,
                "conversation_id": conversation_id,
                "parent_id": parent_id,
                "seq": seq,
                "role": _ROLES[role],
                "type": type_,
                "content": decode_content(content),
                "status": _STATUSES[status],
                "sender_id": sender_id,
                "created_at": row[9],
                "updated_at": row[10],
                "metadata": row[11],
                "usage": None if row[12] is None else Usage.from_stored(row[12]),
            }
        )
    except (ValueError, KeyError) as exc:
        raise DataIntegrityError(f"message {id_} is damaged: {exc!r}") from exc


def to_chunk(row: Sequence[Any]) -> Chunk:
    """A Chunk from a row of CHUNK_COLUMNS."""
    return Chunk.from_stored(dict(zip(_CHUNK_FIELDS, row, strict=True)))


def decode_content(text: str) -> Any:
    """Stored content: most of it is a JSON string without escapes, whose characters
    between the quotes are its value as they stand, so json.loads is skipped for it."""
    inner = text[1:-1]
    if text[:1] == text[-1:] == '"' and len(text) > 1 and "\\" not in inner and '"' not in inner:
        return inner
    return json.loads(text)


def message_text(message_id: str, conversation_id: str | None, content: Any) -> dict[str, Any]:
    """The message_search row of a message."""
    indexed = index_text(text_values(content))
    return {
        "message_id": message_id,
        "conversation_id": conversation_id,
        "terms": indexed.terms,
        "singles": indexed.singles,
    }


def conversation_text(name: str, description: str | None) -> dict[str, str]:
    """The searchable columns of a conversation_search row."""
    name_text, description_text = index_text([name]), index_text([description or ""])
    return {
        "name_terms": name_text.terms,
        "name_singles": name_text.singles,
        "description_terms": description_text.terms,
        "description_singles": description_text.singles,
    }


def message_values(message: Message, content_json: str) -> dict[str, Any]:
    """The messages row of a new message (on the active branch), its content given as
    the JSON text the store made when it checked it."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "parent_id": message.parent_id,
        "seq": message.seq,
        "active": True,
        "role": message.role.value,
        "type": message.type,
        "content": content_json,
        "status": message.status.value,
        "sender_id": message.sender_id,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "meta": message.metadata,
        "usage": None if message.usage is None else message.usage.model_dump(),
    }
