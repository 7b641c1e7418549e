"""ChatGPT data exports: ``conversations.json`` as OpenAI's "Export data" writes it.

Each conversation is a tree of nodes (``mapping``: node id -> ``{id, message, parent,
children}``) whose ``current_node`` is the leaf of the branch the user last saw. A
message has an ``author`` (``role``; ``name`` for tools), typed ``content``
(``content_type`` text, multimodal_text, code, execution_output, thoughts...), a
``recipient`` (``all``, or the tool an assistant message calls), a ``status`` and
``metadata`` (``model_slug``, ``is_visually_hidden_from_conversation``...).

What maps: roles as they are; text to text; images (``image_asset_pointer``) to image
parts whose url is the asset pointer; code sent to a tool to a tool_call (id: the
message's id); a tool's reply to a tool_result naming that call; thoughts and reasoning
recaps to reasoning parts. Everything else of a message is kept in its metadata under
``source`` (the message without its content and times, plus the content's unmapped
fields under ``source.content``), and unknown content types are kept verbatim as parts.
"""

from __future__ import annotations

import json
from typing import Any

from convstore.importers.common import (
    SourceConversation,
    SourceMessage,
    collapse,
    conversation_name,
    file_part,
    image_part,
    message_type,
    reasoning_part,
    text_or_none,
    text_part,
    texts,
    tool_call_part,
    tool_result_part,
)
from convstore.importers.source import FieldError, epoch, expect, optional, required, without
from convstore.models import MessageStatus, Role

FORMAT = "chatgpt"

_ROLES = {role.value: role for role in Role}
_CONVERSATION_KEYS = frozenset(
    {"title", "create_time", "update_time", "mapping", "current_node", "default_model_slug"}
)
_MESSAGE_KEYS = frozenset({"content", "create_time", "update_time"})
_TO_EVERYONE = (None, "all")


def parse_conversation(raw: Any) -> SourceConversation:
    """The conversation ``raw`` (one element of conversations.json), read and checked."""
    raw = expect(raw, dict, "")
    source_id = optional(raw, "conversation_id", str, "") or required(raw, "id", str, "")
    mapping = required(raw, "mapping", dict, "")
    head = optional(raw, "current_node", str, "")
    if head is not None and head not in mapping:
        raise FieldError("current_node", f"{head!r} is not a node of the mapping")
    nodes = [_node(key, node) for key, node in mapping.items()]
    _link_tool_results(nodes)
    update_time = epoch(raw, "update_time", "")
    fields = without(raw, _CONVERSATION_KEYS)
    for key in ("id", "conversation_id"):
        if fields.get(key) == source_id:
            del fields[key]
    metadata: dict[str, Any] = {
        "source": {"format": FORMAT, "id": source_id, "update_time": update_time, "fields": fields}
    }
    model = optional(raw, "default_model_slug", str, "")
    if model is not None:
        metadata["model"] = model
    return SourceConversation(
        id=source_id,
        title=conversation_name(optional(raw, "title", str, ""), "title", fields),
        created_at=epoch(raw, "create_time", ""),
        updated_at=update_time,
        head=head,
        messages=[node for node, _ in nodes],
        metadata=metadata,
    )


def conversation_label(raw: Any) -> tuple[str | None, str | None]:
    """The title and id of ``raw`` if they can be read, for error messages."""
    if not isinstance(raw, dict):
        return None, None
    ident = text_or_none(raw.get("conversation_id")) or text_or_none(raw.get("id"))
    return text_or_none(raw.get("title")), ident


# nodes and messages -------------------------------------------------------------------


class _Call:
    """What a tool's reply needs to know about the messages above it."""

    def __init__(self, recipient: str | None, tool: str | None) -> None:
        self.recipient = recipient  # the tool an assistant message calls
        self.tool = tool  # the tool a tool message speaks for


def _node(key: str, node: Any) -> tuple[SourceMessage, _Call]:
    """The source message of one mapping entry (skipped if empty or hidden)."""
    path = f"mapping[{key!r}]"
    node = expect(node, dict, path)
    parent = optional(node, "parent", str, path)
    message = optional(node, "message", dict, path)
    if message is None:
        reason = "empty root node" if parent is None else "empty node"
        return SourceMessage(key, path, parent, skip=reason), _Call(None, None)
    return _message(key, path, parent, message)


def _message(
    key: str, node_path: str, parent: str | None, message: dict[str, Any]
) -> tuple[SourceMessage, _Call]:
    path = f"{node_path}.message"
    author = required(message, "author", dict, path)
    role_name = required(author, "role", str, f"{path}.author")
    role = _ROLES.get(role_name)
    if role is None:
        raise FieldError(f"{path}.author.role", f"unknown role {role_name!r}")
    tool = optional(author, "name", str, f"{path}.author")
    recipient = optional(message, "recipient", str, path)
    meta = optional(message, "metadata", dict, path) or {}
    model = expect(meta.get("model_slug"), str, f"{path}.metadata.model_slug", optional=True)
    content = required(message, "content", dict, path)
    parts, rest, failed = _content(content, f"{path}.content")
    source = without(message, _MESSAGE_KEYS)
    if rest:
        source["content"] = rest
    if message.get("id") != key:
        source["node"] = key
    record = SourceMessage(
        id=key,
        path=node_path,
        parent=parent,
        role=role,
        status=_status(optional(message, "status", str, path)),
        created_at=epoch(message, "create_time", path),
        updated_at=epoch(message, "update_time", path),
        model=model,
        metadata={"source": source},
        skip=_hidden(role, meta, parts),
    )
    if role is Role.TOOL:
        record.metadata["name"] = tool
        returned: str | list[Any] = parts
        if _plain(parts):
            returned = parts[0]["text"] if parts else ""
        parts = [tool_result_part("", returned, is_error=True if failed else None)]
    elif role is Role.ASSISTANT and recipient not in _TO_EVERYONE:
        assert recipient is not None
        call = "\n".join(texts(parts))
        others = [p for p in parts if not (isinstance(p, dict) and p.get("type") == "text")]
        parts = [tool_call_part(key, recipient, _arguments(call)), *others]
    _set_content(record, parts)
    return record, _Call(recipient if role is Role.ASSISTANT else None, tool)


def _set_content(record: SourceMessage, parts: list[Any]) -> None:
    """The record's content and type from its parts; a lone text part's other fields go
    to ``source.part``."""
    record.content, extra = collapse(parts)
    record.type = message_type(parts)
    if extra:
        record.metadata["source"]["part"] = extra


def _plain(parts: list[Any]) -> bool:
    """Whether the parts are one text part with nothing else to it (or none at all)."""
    return not parts or (len(parts) == 1 and parts[0].keys() == {"type", "text"})


def _hidden(role: Role, meta: dict[str, Any], parts: list[Any]) -> str | None:
    """Why a message is not imported: hidden from the conversation, or an empty system
    message; None to import it."""
    if meta.get("is_visually_hidden_from_conversation") is True:
        return "hidden message"
    if role is Role.SYSTEM and not any(t.strip() for t in texts(parts)) and len(parts) <= 1:
        return "empty system message"
    return None


def _status(status: str | None) -> MessageStatus:
    """Finished messages (stopped ones too) are complete; any other never completed."""
    if status is None or status.startswith("finished"):
        return MessageStatus.COMPLETE
    return MessageStatus.ERROR


def _arguments(text: str) -> str | dict[str, Any]:
    """A tool call's arguments: a JSON object if the text is one, else the text."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text, parse_constant=_refuse)
        except ValueError:
            return text
        if isinstance(value, dict):
            return value
    return text


def _refuse(name: str) -> None:
    raise ValueError(name)


def _link_tool_results(nodes: list[tuple[SourceMessage, _Call]]) -> None:
    """Point each tool result at the call it answers: within its turn (up to the user
    message above it), the nearest message sent to that tool, else to any tool; else
    its parent."""
    by_id = {message.id: (message, call) for message, call in nodes}
    for message, call in nodes:
        if message.role is not Role.TOOL or not isinstance(message.content, list):
            continue
        found = any_tool = None
        above = message.parent
        for _ in range(len(nodes)):  # bounded, should the parents form a cycle
            if above is None or above not in by_id:
                break
            upper, upper_call = by_id[above]
            if upper.role is Role.USER and upper.skip is None:
                break
            if upper_call.recipient == call.tool and call.tool is not None:
                found = above
                break
            if upper_call.recipient not in _TO_EVERYONE and any_tool is None:
                any_tool = above
            above = upper.parent
        message.content[0]["tool_call_id"] = found or any_tool or message.parent or ""


# content ------------------------------------------------------------------------------

_IMAGE = "image_asset_pointer"


def _content(content: dict[str, Any], path: str) -> tuple[list[Any], dict[str, Any], bool]:
    """The parts of a message's content, the content's fields left unmapped, and whether
    it reports an error."""
    kind = required(content, "content_type", str, path)
    if kind in ("text", "multimodal_text"):
        items = required(content, "parts", list, path)
        parts = [_part(item, f"{path}.parts[{i}]") for i, item in enumerate(items)]
        return parts, without(content, frozenset({"content_type", "parts"})), False
    simple = _SIMPLE.get(kind)
    if simple is not None:
        key, failed = simple
        text = required(content, key, str, path)
        rest = without(content, frozenset({"content_type", key}))
        return [text_part(text)], rest, failed
    if kind == "thoughts":
        thoughts = required(content, "thoughts", list, path)
        parts = [_thought(item, f"{path}.thoughts[{i}]") for i, item in enumerate(thoughts)]
        return parts, without(content, frozenset({"content_type", "thoughts"})), False
    if kind == "reasoning_recap":
        recap = required(content, "content", str, path)
        rest = without(content, frozenset({"content_type", "content"}))
        return [reasoning_part("", recap)], rest, False
    if kind == "tether_browsing_display":
        result = optional(content, "result", str, path)
        rest = without(content, frozenset({"content_type", "result"}))
        return ([text_part(result)] if result else []), rest, False
    if kind == "user_editable_context":
        parts = [
            text_part(value, {"context": key})
            for key in ("user_profile", "user_instructions")
            if (value := optional(content, key, str, path))
        ]
        rest = without(content, frozenset({"content_type", "user_profile", "user_instructions"}))
        return parts, rest, False
    return [content], {}, False  # unknown: kept whole, as a part of its own shape


# content types that are one text field: (that field, whether it reports an error)
_SIMPLE = {
    "code": ("text", False),
    "execution_output": ("text", False),
    "tether_quote": ("text", False),
    "system_error": ("text", True),
}


def _part(item: Any, path: str) -> Any:
    """One item of ``parts``: text, an image or file by reference, or kept as it is."""
    if isinstance(item, str):
        return text_part(item)
    item = expect(item, dict, path)
    kind = item.get("content_type")
    if kind == _IMAGE:
        pointer = required(item, "asset_pointer", str, path)
        extra = without(item, frozenset({"content_type", "asset_pointer"}))
        return image_part(pointer, extra=extra)
    if kind == "audio_transcription":
        text = required(item, "text", str, path)
        return text_part(text, without(item, frozenset({"content_type", "text"})))
    if kind == "audio_asset_pointer":
        pointer = required(item, "asset_pointer", str, path)
        audio = optional(item, "format", str, path)
        extra = without(item, frozenset({"content_type", "asset_pointer"}))
        return file_part(None, url=pointer, mime_type=audio and f"audio/{audio}", extra=extra)
    return item


def _thought(item: Any, path: str) -> dict[str, Any]:
    """One thought of a ``thoughts`` content: a reasoning part."""
    item = expect(item, dict, path)
    text = optional(item, "content", str, path) or ""
    summary = optional(item, "summary", str, path)
    return reasoning_part(text, summary, without(item, frozenset({"content", "summary"})))
