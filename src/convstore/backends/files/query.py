"""The store's filters, evaluated in Python on records read from files."""

from __future__ import annotations

from typing import Any

from convstore.models import Conversation, Message
from convstore.queries import ConversationFilter, MessageFilter, MetadataEquals, TimeRange


def conversation_matches(conversation: Conversation, where: ConversationFilter) -> bool:
    return (
        (where.owner_id is None or conversation.owner_id == where.owner_id)
        and (where.conversation_ids is None or conversation.id in where.conversation_ids)
        and in_range(conversation.created_at, where.created)
        and in_range(conversation.updated_at, where.updated)
        and metadata_matches(conversation.metadata, where.metadata)
    )


def message_matches(message: Message, where: MessageFilter) -> bool:
    return (
        (where.conversation_ids is None or message.conversation_id in where.conversation_ids)
        and (where.roles is None or message.role in where.roles)
        and (where.statuses is None or message.status in where.statuses)
        and in_range(message.created_at, where.created)
        and metadata_matches(message.metadata, where.metadata)
    )


def in_range(value: float, bounds: TimeRange) -> bool:
    """``after < value <= before``, as the SQL backends compare."""
    return (bounds.after is None or value > bounds.after) and (
        bounds.before is None or value <= bounds.before
    )


def metadata_matches(metadata: dict[str, Any], wanted: tuple[MetadataEquals, ...]) -> bool:
    return all(_equals(_lookup(metadata, condition.path), condition.value) for condition in wanted)


_MISSING = object()


def _lookup(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return _MISSING
        document = document[key]
    return document


def _equals(found: Any, expected: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0."""
    if found is _MISSING:
        return False
    if isinstance(expected, bool) or isinstance(found, bool):
        return type(found) is type(expected) and found == expected
    if isinstance(expected, int | float):
        return isinstance(found, int | float) and found == expected
    return bool(found == expected)
