"""The typed records the native API returns: conversations, messages and token usage.

Records are immutable snapshots of what was stored when they were read. Message content
is whatever JSON value the caller stored (str, dict or list) and comes back verbatim;
treat it as read-only, since the store may hand the same snapshot to several readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

JSONContent = str | dict[str, Any] | list[Any]


class Role(StrEnum):
    """Who wrote a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class MessageStatus(StrEnum):
    """Where a message is in its life."""

    COMPLETE = "complete"
    STREAMING = "streaming"
    ERROR = "error"
    RETRACTED = "retracted"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    @classmethod
    def from_stored(cls, values: dict[str, Any]) -> Self:
        """A record from values that were validated when they were written.

        Skips validation, which would otherwise dominate the cost of reading a long
        conversation; ``values`` must hold every field, already of the right type.
        """
        record = cls.__new__(cls)
        object.__setattr__(record, "__dict__", values)
        object.__setattr__(record, "__pydantic_fields_set__", set(values))
        object.__setattr__(record, "__pydantic_extra__", None)
        object.__setattr__(record, "__pydantic_private__", None)
        return record


class Usage(_Record):
    """Token usage of one model call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None


class Conversation(_Record):
    """A conversation's own fields and counters, without its messages."""

    id: str
    name: str
    description: str | None = None
    owner_id: str | None = None
    state: str = "active"
    state_details: dict[str, Any] = {}
    head_message_id: str | None = None
    created_at: float
    updated_at: float
    metadata: dict[str, Any] = {}
    version: int
    message_count: int = 0
    last_seq: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_stored(cls, values: dict[str, Any]) -> Self:
        """A record from stored values; ``state_details`` may be absent (a store that
        keeps no details for the state), and then there are none."""
        if "state_details" not in values:
            values = {**values, "state_details": {}}
        return super().from_stored(values)


class Message(_Record):
    """One message of a conversation.

    ``seq`` is strictly increasing and unique within the conversation; ``parent_id``
    links the message to the one it follows (replies, edits and regenerations are
    branches of that tree).
    """

    id: str
    conversation_id: str
    parent_id: str | None = None
    seq: int
    role: Role
    type: str = "text"
    content: JSONContent
    status: MessageStatus = MessageStatus.COMPLETE
    sender_id: str | None = None
    created_at: float
    updated_at: float
    metadata: dict[str, Any] = {}
    usage: Usage | None = None


class Chunk(_Record):
    """One piece of a streamed reply: ``seq`` counts from 1 within its message."""

    message_id: str
    seq: int
    delta: str
    created_at: float


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append, as accepted by ``append_messages``.

    Fields are checked by the store, not here, so that every problem is reported as
    an InvalidInputError naming the field.
    """

    role: str
    content: Any
    metadata: dict[str, Any] | None = None
    id: str | None = None
    type: str = "text"
    sender_id: str | None = None
    usage: Usage | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    """One entry of the change feed: ``id`` is strictly increasing across the store."""

    id: int
    conversation_id: str
    kind: str
    payload: dict[str, Any]
