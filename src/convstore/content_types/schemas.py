"""The content schemas of the built-in message types.

Each message type's schema says what its ``content`` may be: a union whose arms are
told apart by the JSON kind of the content (a string, an object or a list), so that a
mismatch is reported against the one arm that applies. Objects follow the models
below (undeclared keys allowed and kept); lists are lists of parts (see
:mod:`convstore.content_types.parts`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from convstore.content_types.parts import (
    ContentModel,
    FilePart,
    ImagePart,
    LooseParts,
    Parts,
    ReasoningPart,
    ToolCallPart,
    ToolResultPart,
)


class McpCall(ContentModel):
    """A call of a tool on an MCP server: ``server`` (its name), ``name`` (the tool),
    ``arguments`` (a JSON object) and the call's ``id``, if the caller tracks one."""

    server: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class McpResult(ContentModel):
    """What an MCP tool returned for the call ``call_id``: ``content`` is text or the
    server's content blocks (text blocks are text parts), ``structured_content`` its
    structured result, and ``is_error`` whether the tool reported a failure."""

    call_id: str
    server: str | None = None
    content: str | list[Any]
    structured_content: dict[str, Any] | None = None
    is_error: bool = False


WorkflowStatus = Literal["pending", "running", "waiting", "completed", "failed", "cancelled"]


class Workflow(ContentModel):
    """A multi-step workflow's progress: which one (``workflow_id``, ``name``), where it
    is (``status``, the current ``step``), and what went in and came out."""

    workflow_id: str
    status: WorkflowStatus
    name: str | None = None
    step: str | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None


class Processing(ContentModel):
    """Progress of work under way: the ``stage`` it is in, ``percent`` done (0 to 100),
    or ``current`` out of ``total`` items, and a ``message`` to show."""

    stage: str
    percent: Annotated[float, Field(ge=0, le=100)] | None = None
    current: Annotated[int, Field(ge=0)] | None = None
    total: Annotated[int, Field(ge=0)] | None = None
    message: str | None = None


class ErrorContent(ContentModel):
    """A failure shown in the conversation: its ``message``, a stable ``code`` and
    whether trying again may help (``retryable``)."""

    message: str
    code: str | None = None
    retryable: bool | None = None


ToolCalls = Annotated[list[ToolCallPart], Field(min_length=1)]

BUILT_IN_TYPES: dict[str, Any] = {
    "text": str | dict[str, Any] | LooseParts,
    "image": ImagePart,
    "file": FilePart,
    "tool_call": ToolCallPart | ToolCalls,
    "tool_result": ToolResultPart,
    "mcp_call": McpCall,
    "mcp_result": McpResult,
    "workflow": Workflow,
    "system": str | Parts,
    "processing": Processing,
    "streaming_response": str,
    "reasoning": str | ReasoningPart,
    "error": str | ErrorContent,
    "multimodal": Parts,
}
"""The schema of each built-in message type, by name."""
