"""The request and response bodies of the REST API (records reuse convstore.models)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from convstore.models import Chunk, Conversation, Message, Role, Usage
from convstore.states import ConversationState
from convstore.validation import MAX_INT

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _not_text(value: Any) -> Any:
    if isinstance(value, str | bytes | bool):
        raise ValueError("must be a number")  # pydantic would read "3" as 3
    return value


# The bounds come before the validator so that the schema states them (as minimum and
# exclusiveMaximum); the upper one is "below MAX_INT + 1", since OpenAPI numbers are
# written as floats and 2**63 is one exactly, where MAX_INT would round up to it.
BELOW_2_63 = MAX_INT + 1
Count = Annotated[int, Field(ge=0, lt=BELOW_2_63), BeforeValidator(_not_text)]
Position = Annotated[int, Field(ge=1, lt=BELOW_2_63), BeforeValidator(_not_text)]
Content = str | dict[str, Any] | list[Any]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UsageIn(_In):
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    model: str | None = None

    def to_usage(self) -> Usage:
        return Usage(**self.model_dump())


class MessageIn(_In):
    role: Role
    content: Content
    metadata: dict[str, Any] | None = None
    message_id: Id | None = None
    type: str = "text"
    sender_id: Id | None = None
    usage: UsageIn | None = None


class ConversationIn(_In):
    name: str
    description: str | None = None
    metadata: dict[str, Any] | None = None
    conversation_id: Id | None = None
    messages: list[MessageIn] = Field(default_factory=list, max_length=1000)


class ConversationPatch(_In):
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class MessagesIn(_In):
    messages: list[MessageIn] = Field(min_length=1, max_length=1000)


class MessageEdit(_In):
    content: Content | None = None
    metadata: dict[str, Any] | None = None


class StateIn(_In):
    state: ConversationState
    expected_version: Count | None = None


class StreamIn(_In):
    role: Role = Role.ASSISTANT
    message_id: Id | None = None
    metadata: dict[str, Any] | None = None
    type: str = "text"
    sender_id: Id | None = None


class ChunkIn(_In):
    seq: Position
    delta: str


class ChunksIn(_In):
    """Chunks with consecutive numbers (a batch, or a single chunk)."""

    chunks: list[ChunkIn] = Field(min_length=1, max_length=1000)


class FinalizeIn(_In):
    finish_reason: str = "stop"
    usage: UsageIn | None = None


class AbortIn(_In):
    reason: str | None = None


class ConversationPage(BaseModel):
    items: list[Conversation]
    next_cursor: str | None


class MessagePage(BaseModel):
    items: list[Message]
    next_cursor: str | None


class ChunkPage(BaseModel):
    items: list[Chunk]


class Deleted(BaseModel):
    deleted: list[str]


class ConversationMetadata(BaseModel):
    """A conversation's counters and state, without its messages."""

    id: str
    state: str
    head_message_id: str | None
    version: int
    message_count: int
    last_seq: int
    prompt_tokens: int
    completion_tokens: int
    created_at: float
    updated_at: float


class Snippet(BaseModel):
    text: str
    highlights: list[tuple[int, int]]


class SearchHit(BaseModel):
    conversation_id: str
    score: float
    snippet: Snippet
    message: Message | None
    conversation: Conversation | None


class SearchPage(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in [
        (401, "no valid API key"),
        (404, "no such conversation or message (for this user)"),
        (409, "a conflict: an id reused, or a state that does not allow it"),
        (413, "the request body is too large"),
        (422, "invalid input"),
        (429, "rate limited; see Retry-After"),
    ]
}
