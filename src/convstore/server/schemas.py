"""The request and response bodies of the REST API (records reuse convstore.models)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from convstore.content_types.schemas import BUILT_IN_TYPES
from convstore.models import Chunk, Conversation, Message, NewMessage, Role, Usage
from convstore.states import ConversationState
from convstore.validation import MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH, MAX_TYPE_LENGTH

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# The largest integer the API takes: 2**53 - 1, the last one every JSON reader (JavaScript's
# numbers, OpenAPI tools) holds exactly; the store's own bound (BIGINT) is higher.
MAX_INT = 2**53 - 1
MAX_PAGE_SIZE = 200  # seed 001's cap on a page
MAX_BATCH = 1000  # messages or chunks in one request
MAX_CURSOR_LENGTH = 1000
TEXT_RULE = "Text is stored as given, except that no text may hold NUL (U+0000)."
JSON_RULE = "a JSON object, nested at most 100 levels deep, its integers within -2**63..2**63-1"
CONTENT_RULE = (
    "a string, or JSON (object or array) nested at most 100 levels deep with integers "
    "within -2**63..2**63-1; at most the "
    "store's max_message_size bytes (1 MiB by default) as JSON"
)

Id = Annotated[str, Field(pattern=ID_PATTERN, description="1 to 64 of A-Z a-z 0-9 _ -")]


def _not_text(value: Any) -> Any:
    """Refuses what pydantic would read as a number though JSON says otherwise."""
    if isinstance(value, str | bytes | bool):
        raise ValueError("must be a number")  # pydantic would read "3" as 3, true as 1
    return value


# the bounds come first, so that the schema states them; then the check on the JSON type
Count = Annotated[int, Field(ge=0, le=MAX_INT), BeforeValidator(_not_text)]
Seq = Annotated[int, Field(ge=1, le=MAX_INT), BeforeValidator(_not_text)]
Name = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION_LENGTH)]
# a built-in message type, or a custom one namespaced as x-... or vendor/...
TYPE_PATTERN = "^(?:" + "|".join(BUILT_IN_TYPES) + r"|x-.+|[^/]+/.+)$"
Kind = Annotated[
    str,
    Field(
        max_length=MAX_TYPE_LENGTH,
        pattern=TYPE_PATTERN,
        description="a built-in message type or a namespaced custom one (x-... or "
        "vendor/...); the content must fit the schema of a built-in type (see the "
        "README, Message types), which is checked when the message is written",
    ),
]
Metadata = Annotated[dict[str, Any] | None, Field(description=JSON_RULE)]
Content = Annotated[str | dict[str, Any] | list[Any], Field(description=CONTENT_RULE)]

# path and query parameters
ConversationId = Annotated[str, Path(pattern=ID_PATTERN, description="a conversation id")]
MessageId = Annotated[str, Path(pattern=ID_PATTERN, description="a message id")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items in a page")]
SeqBound = Annotated[int | None, Query(ge=0, le=MAX_INT)]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="next_cursor of the previous page (any other value is refused, 422)",
    ),
]
Time = Annotated[float | None, Query(allow_inf_nan=False, description="seconds since the epoch")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UsageIn(_In):
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    model: Name | None = None

    def to_usage(self) -> Usage:
        return Usage(**self.model_dump())


class MessageIn(_In):
    role: Role
    content: Content
    metadata: Metadata = None
    message_id: Id | None = None
    type: Kind = "text"
    sender_id: Id | None = None
    usage: UsageIn | None = None

    def to_new(self, message_id: str | None = None) -> NewMessage:
        """The message to store, under ``message_id`` if given (else its own)."""
        return NewMessage(
            role=self.role.value,
            content=self.content,
            metadata=self.metadata,
            id=message_id if message_id is not None else self.message_id,
            type=self.type,
            sender_id=self.sender_id,
            usage=None if self.usage is None else self.usage.to_usage(),
        )


class ConversationIn(_In):
    name: Name
    description: Description | None = None
    metadata: Metadata = None
    conversation_id: Id | None = None
    messages: list[MessageIn] = Field(default_factory=list, max_length=MAX_BATCH)


class ConversationPatch(_In):
    name: Name | None = None
    description: Description | None = None
    metadata: Metadata = None


class MessagesIn(_In):
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)


class MessageEdit(_In):
    content: Content | None = None
    metadata: Metadata = None


class StateIn(_In):
    state: ConversationState
    details: Metadata = Field(
        default=None,
        description="the state's details (awaiting_llm: request_id; processing_tool: "
        "tool_id; processing_workflow: workflow_id; error: error; see the README)",
    )
    expected_version: Count | None = None


class StreamIn(_In):
    """Begins a streamed reply: a message with status "streaming" and no content yet."""

    role: Role = Role.ASSISTANT
    message_id: Id | None = None
    metadata: Metadata = None
    type: Kind = "text"
    sender_id: Id | None = None


class ChunkIn(_In):
    seq: Seq
    delta: str = Field(description="text; the chunks together are the reply's content")


class ChunksIn(_In):
    """Chunks with consecutive numbers (a batch, or a single chunk)."""

    chunks: list[ChunkIn] = Field(min_length=1, max_length=MAX_BATCH)


class FinalizeIn(_In):
    finish_reason: Kind = "stop"
    usage: UsageIn | None = None


class AbortIn(_In):
    reason: Description | None = None


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
    hits: list[SearchHit]
    next_cursor: str | None


class Health(BaseModel):
    """``status`` "ok" for anyone; the store's health report for server admins."""

    model_config = ConfigDict(extra="allow")

    status: str
    backend: str | None = None
    conversations_count: int | None = None
    total_messages: int | None = None
    disk_usage: int | None = None
    last_backup: float | None = None
    locks_status: dict[str, Any] | None = None
    cache: dict[str, Any] | None = None
    error: str | None = None


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
