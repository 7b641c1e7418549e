"""Checks on whole records given to the store to import (from an archive, a backup or
another store): every field a caller could have written, checked as when it was
written, and the fields the store sets itself bounded by what every backend holds."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from convstore.errors import InvalidInputError
from convstore.ids import check_id
from convstore.models import Conversation, Message
from convstore.validation import (
    MAX_COUNTER,
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TYPE_LENGTH,
    check_int,
    check_metadata,
    check_role,
    check_seconds,
    check_status,
    check_text,
    check_usage,
    encode_content,
)


def check_records(conversation: Conversation, messages: Iterable[Message]) -> None:
    """Refuse a conversation given whole (to import it) unless every field is one the
    store would accept from a caller, and its own counters fit every backend."""
    records: list[Conversation | Message] = [conversation, *messages]
    for record in records:
        try:
            check_record(record)
        except InvalidInputError as exc:
            what = "conversation" if isinstance(record, Conversation) else "message"
            raise InvalidInputError(f"{what} {_shown(record.id)}: {exc.message}") from None


def check_record(record: Conversation | Message) -> None:
    """The checks applied to what callers write, applied to a stored record (read from
    an archive or another store), and bounds on the fields the store sets itself."""
    check_id(record.id, "id")
    if isinstance(record, Conversation):
        check_text(record.name, "name", MAX_NAME_LENGTH)
        check_text(record.description, "description", MAX_DESCRIPTION_LENGTH, optional=True)
        check_text(record.state, "state", MAX_TYPE_LENGTH)
        for name in ("owner_id", "head_message_id"):
            _check_optional_id(getattr(record, name), name)
        for name in ("version", "message_count", "last_seq"):
            check_int(getattr(record, name), name, high=MAX_COUNTER)
        for name in ("prompt_tokens", "completion_tokens"):
            check_int(getattr(record, name), name)
    else:
        check_id(record.conversation_id, "conversation_id")
        for name in ("parent_id", "sender_id"):
            _check_optional_id(getattr(record, name), name)
        check_int(record.seq, "seq", high=MAX_COUNTER)
        check_role(record.role)
        check_status(record.status)
        check_text(record.type, "type", MAX_TYPE_LENGTH)
        encode_content(record.content, sys.maxsize)  # a size limit is the writer's own
        check_usage(record.usage)
    for name in ("created_at", "updated_at"):
        check_seconds(getattr(record, name), name)
    check_metadata(record.metadata, room=0)  # the store's own note may fill the room


def _check_optional_id(value: object, field: str) -> None:
    if value is not None:
        check_id(value, field)


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
