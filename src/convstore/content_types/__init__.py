"""Typed message content: the built-in message types, their content schemas, and parts.

Every message has a ``type`` ("text" by default). A built-in or registered type has a
schema its content is checked against when the message is written; a mismatch is an
InvalidInputError naming the type and the field. Custom types are namespaced ("x-..."
or "vendor/...", e.g. "acme/chart") and stored unchecked unless registered with
:func:`register_message_type`. Content is stored exactly as given, and reading never
checks it again, so messages written before a schema existed stay readable.

The built-in types (see the README's "Message types" for their schemas): text, image,
file, tool_call, tool_result, mcp_call, mcp_result, workflow, system, processing,
streaming_response, reasoning, error, multimodal.
"""

from __future__ import annotations

from convstore.content_types.parts import (
    PARTS,
    ContentModel,
    FilePart,
    ImagePart,
    LooseParts,
    Parts,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    is_namespaced,
)
from convstore.content_types.registry import (
    MESSAGE_TYPES,
    MessageType,
    check_content,
    register_message_type,
)
from convstore.content_types.schemas import (
    BUILT_IN_TYPES,
    ErrorContent,
    McpCall,
    McpResult,
    Processing,
    Workflow,
)

__all__ = [
    "BUILT_IN_TYPES",
    "MESSAGE_TYPES",
    "PARTS",
    "ContentModel",
    "ErrorContent",
    "FilePart",
    "ImagePart",
    "LooseParts",
    "McpCall",
    "McpResult",
    "MessageType",
    "Parts",
    "Processing",
    "ReasoningPart",
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
    "Workflow",
    "check_content",
    "is_namespaced",
    "register_message_type",
]
