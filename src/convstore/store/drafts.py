"""Drafts: new messages checked field by field before anything is written.

:class:`~convstore.models.NewMessage` is the one declaration of what a new message
has; a mapping given instead is read with the same field names (plus ``message_id``,
the REST name of ``id``), and a draft is a NewMessage whose fields passed their checks,
with the JSON text of its content made once, on the way in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from convstore.content_types import check_content
from convstore.errors import ConcurrencyError, InvalidInputError
from convstore.ids import check_id
from convstore.models import Message, MessageStatus, NewMessage, Role, Usage
from convstore.validation import (
    MAX_TYPE_LENGTH,
    check_metadata,
    check_role,
    check_text,
    check_usage,
    encode_content,
)

NEW_MESSAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(NewMessage)) | {"message_id"}


@dataclass(frozen=True, slots=True)
class Draft:
    """A checked message, not yet given its seq, parent and timestamps."""

    new: NewMessage  # every field checked: role a Role, usage a Usage or None
    content_json: str  # the content as JSON text, made by the size check
    status: MessageStatus = MessageStatus.COMPLETE

    @property
    def role(self) -> Role:
        """The checked role."""
        return Role(self.new.role)

    @property
    def usage(self) -> Usage | None:
        """The checked usage."""
        usage = self.new.usage
        return usage if isinstance(usage, Usage) else None


def make_draft(new: NewMessage, max_bytes: int) -> Draft:
    """Check every field of ``new`` (content at most ``max_bytes`` of JSON, and fitting
    the schema of its message type: see :mod:`convstore.content_types`)."""
    content_json = encode_content(new.content, max_bytes)
    checked = NewMessage(
        role=check_role(new.role),
        content=new.content,
        metadata=check_metadata(new.metadata),
        id=None if new.id is None else check_id(new.id, "message_id"),
        type=check_text(new.type, "type", MAX_TYPE_LENGTH),
        sender_id=None if new.sender_id is None else check_id(new.sender_id, "sender_id"),
        usage=check_usage(new.usage),
    )
    check_content(checked.type, checked.content)
    return Draft(checked, content_json)


def make_drafts(messages: Iterable[NewMessage | Mapping[str, Any]], max_bytes: int) -> list[Draft]:
    """Drafts of several messages; a problem is reported with the message's index."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise InvalidInputError("messages must be a list of messages")
    drafts = []
    for index, item in enumerate(messages):
        if isinstance(item, Mapping):
            new = new_message_from_mapping(item, index)
        elif isinstance(item, NewMessage):
            new = item
        else:
            raise InvalidInputError(
                f"messages[{index}] must be a dict or NewMessage, not {type(item).__name__}"
            )
        try:
            drafts.append(make_draft(new, max_bytes))
        except InvalidInputError as exc:
            raise InvalidInputError(f"messages[{index}]: {exc.message}") from None
    return drafts


def new_message_from_mapping(item: Mapping[str, Any], index: int) -> NewMessage:
    """A NewMessage from a dict with its field names (``message_id`` for ``id``)."""
    unknown = sorted(str(k) for k in item if k not in NEW_MESSAGE_FIELDS)
    if unknown:
        raise InvalidInputError(f"messages[{index}] has unknown fields: {', '.join(unknown)}")
    for required in ("role", "content"):
        if required not in item:
            raise InvalidInputError(f"messages[{index}] has no {required!r}")
    values = {k: v for k, v in item.items() if k != "message_id"}
    if "message_id" in item:
        values["id"] = item["message_id"]
    return NewMessage(**values)


def check_retry(stored: Message, draft: Draft, conversation_id: str) -> None:
    """Refuse a message id that is already used by a different message."""
    if (
        stored.conversation_id != conversation_id
        or stored.role is not draft.role
        or stored.content != draft.new.content
    ):
        raise ConcurrencyError(
            f"message id {stored.id!r} is already used by a different message; "
            "a retry must repeat the same conversation, role and content"
        )
