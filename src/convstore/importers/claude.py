"""Claude data exports: ``conversations.json`` as claude.ai's "Export data" writes it.

Each conversation (``uuid``, ``name``, ``created_at``/``updated_at`` in ISO 8601) holds
``chat_messages``: ``uuid``, ``sender`` (human or assistant), ``text``, ``content``
blocks (text, thinking, tool_use, tool_result...), ``attachments`` (files whose text was
extracted: ``file_name``, ``file_size``, ``file_type``, ``extracted_content``),
``files``, and ``parent_message_uuid``; ``current_leaf_message_uuid`` names the leaf of
the branch the user last saw. Older exports have no parent uuids: their messages are one
branch, in order.

What maps: human to user; text blocks to text; thinking to reasoning (summaries joined);
tool_use to tool_call and tool_result to tool_result; attachments to file parts (their
extracted text kept in metadata under ``attachments``); files to image parts (an image
with a link) or file parts. The rest of a message is kept in its metadata under
``source``, and unknown blocks are kept verbatim as parts.
"""

from __future__ import annotations

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
from convstore.importers.source import FieldError, expect, iso_time, optional, required, without
from convstore.models import Role
from convstore.validation import dump_json

FORMAT = "claude"

_SENDERS = {"human": Role.USER, "assistant": Role.ASSISTANT, "system": Role.SYSTEM}
_CONVERSATION_KEYS = frozenset(
    {"uuid", "name", "summary", "created_at", "updated_at", "chat_messages", "model"}
    | {"current_leaf_message_uuid"}
)
_MESSAGE_KEYS = frozenset({"content", "created_at", "updated_at", "sender", "attachments"})


def parse_conversation(raw: Any) -> SourceConversation:
    """The conversation ``raw`` (one element of conversations.json), read and checked."""
    raw = expect(raw, dict, "")
    source_id = required(raw, "uuid", str, "")
    items = required(raw, "chat_messages", list, "")
    messages = [_message(item, f"chat_messages[{i}]") for i, item in enumerate(items)]
    _link(messages, items)
    known = {m.id for m in messages}
    leaf = optional(raw, "current_leaf_message_uuid", str, "")
    fields = without(raw, _CONVERSATION_KEYS)
    if leaf is not None and leaf not in known:
        fields["current_leaf_message_uuid"] = leaf  # names no message: kept, not followed
    updated = iso_time(raw, "updated_at", "")
    metadata: dict[str, Any] = {
        "source": {
            "format": FORMAT,
            "id": source_id,
            "update_time": raw.get("updated_at"),
            "fields": fields,
        }
    }
    model = optional(raw, "model", str, "")
    if model is not None:
        metadata["model"] = model
    return SourceConversation(
        id=source_id,
        title=conversation_name(optional(raw, "name", str, ""), "name", fields),
        created_at=iso_time(raw, "created_at", ""),
        updated_at=updated,
        head=leaf if leaf in known else None,
        messages=messages,
        metadata=metadata,
        description=optional(raw, "summary", str, "") or None,
    )


def conversation_label(raw: Any) -> tuple[str | None, str | None]:
    """The title and id of ``raw`` if they can be read, for error messages."""
    if not isinstance(raw, dict):
        return None, None
    return text_or_none(raw.get("name")), text_or_none(raw.get("uuid"))


def _link(messages: list[SourceMessage], items: list[Any]) -> None:
    """Each message's parent: its parent uuid if the export has them (the all-zero uuid
    claude.ai gives a first message, or a uuid of no message here, makes it a root); in
    older exports, the message before it."""
    linear = all(item.get("parent_message_uuid") is None for item in items)
    known = {m.id for m in messages}
    previous: str | None = None
    for message in messages:
        if linear:
            message.parent = previous
            previous = message.id
        elif message.parent not in known:
            message.parent = None


def _message(item: Any, path: str) -> SourceMessage:
    item = expect(item, dict, path)
    uuid = required(item, "uuid", str, path)
    sender = required(item, "sender", str, path)
    role = _SENDERS.get(sender)
    if role is None:
        raise FieldError(f"{path}.sender", f"unknown sender {sender!r}")
    blocks = optional(item, "content", list, path) or []
    text = optional(item, "text", str, path)
    parts = _blocks(blocks, uuid, f"{path}.content")
    if not blocks and text:
        parts = [text_part(text)]
    source = without(item, _MESSAGE_KEYS)
    if text is not None and (not blocks or _repeats(text, parts)):
        del source["text"]  # it is the content, or only repeats it
    metadata: dict[str, Any] = {"source": source}
    attachments = optional(item, "attachments", list, path) or []
    parts += [_attachment(a, f"{path}.attachments[{i}]") for i, a in enumerate(attachments)]
    if attachments:
        metadata["attachments"] = attachments
    files_key = "files_v2" if item.get("files_v2") else "files"
    files = optional(item, files_key, list, path) or []
    parts += [_file(f, f"{path}.{files_key}[{i}]") for i, f in enumerate(files)]
    source.pop(files_key, None)
    content, extra = collapse(parts)
    if extra:
        source["part"] = extra
    model = optional(item, "model", str, path)
    return SourceMessage(
        id=uuid,
        path=path,
        parent=optional(item, "parent_message_uuid", str, path),
        role=role,
        content=content,
        type=message_type(parts),
        created_at=iso_time(item, "created_at", path),
        updated_at=iso_time(item, "updated_at", path),
        model=model,
        metadata=metadata,
    )


def _repeats(text: str, parts: list[Any]) -> bool:
    """Whether a message's ``text`` only repeats its text blocks (so need not be kept)."""
    pieces = texts(parts)
    return text in ("".join(pieces), "\n\n".join(pieces), "\n".join(pieces))


def _blocks(blocks: list[Any], uuid: str, path: str) -> list[Any]:
    """The parts of a message's content blocks; a tool_result without the id of its
    tool_use answers the latest tool_use of that name before it."""
    parts: list[Any] = []
    calls: dict[str | None, str] = {}  # tool name (None: any) -> id of its latest call
    for index, item in enumerate(blocks):
        where = f"{path}[{index}]"
        block = expect(item, dict, where)
        kind = required(block, "type", str, where)
        if kind == "text":
            text = required(block, "text", str, where)
            parts.append(text_part(text, without(block, frozenset({"type", "text"}))))
        elif kind == "thinking":
            parts.append(_thinking(block, where))
        elif kind == "tool_use":
            name = required(block, "name", str, where)
            call_id = optional(block, "id", str, where) or f"{uuid}-{index}"
            calls[name] = calls[None] = call_id
            arguments = block.get("input", {})
            if not isinstance(arguments, str | dict):
                arguments = dump_json(arguments)
            extra = without(block, frozenset({"type", "id", "name", "input"}))
            parts.append(tool_call_part(call_id, name, arguments, extra))
        elif kind == "tool_result":
            parts.append(_tool_result(block, where, calls, f"{uuid}-{index}"))
        else:
            parts.append(block)  # unknown: kept as it is
    return parts


def _thinking(block: dict[str, Any], path: str) -> dict[str, Any]:
    """A thinking block as a reasoning part; its summaries joined into one."""
    text = optional(block, "thinking", str, path) or ""
    summaries = optional(block, "summaries", list, path) or []
    found = [s.get("summary") for s in summaries if isinstance(s, dict)]
    joined = "\n".join(s for s in found if isinstance(s, str)) or None
    rest = without(block, frozenset({"type", "thinking"}))
    if len(found) == len(summaries) and all(isinstance(s, str) for s in found):
        rest.pop("summaries", None)  # all of it is in the joined summary
    return reasoning_part(text, joined, rest)


def _tool_result(
    block: dict[str, Any], path: str, calls: dict[str | None, str], fallback: str
) -> dict[str, Any]:
    """A tool_result block as a tool_result part; its text blocks as text parts."""
    name = optional(block, "name", str, path)
    call_id = optional(block, "tool_use_id", str, path) or calls.get(name) or calls.get(None)
    content = block.get("content")
    if isinstance(content, list):
        content = [_result_item(item) for item in content]
    elif not isinstance(content, str):
        content = "" if content is None else dump_json(content)
    is_error = optional(block, "is_error", bool, path)
    extra = without(block, frozenset({"type", "tool_use_id", "content", "is_error"}))
    return tool_result_part(call_id or fallback, content, is_error=is_error, extra=extra)


def _result_item(item: Any) -> Any:
    """One item of a tool result: a text block as a text part, anything else as it is."""
    if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
        return text_part(item["text"], without(item, frozenset({"type", "text"})))
    return item


def _attachment(item: Any, path: str) -> dict[str, Any]:
    """An attachment as a file part (its extracted text stays in metadata)."""
    item = expect(item, dict, path)
    name = optional(item, "file_name", str, path)
    kind = optional(item, "file_type", str, path)
    extra = without(item, frozenset({"file_name", "extracted_content"}))
    return file_part(name, mime_type=kind if kind and "/" in kind else None, extra=extra)


def _file(item: Any, path: str) -> dict[str, Any]:
    """A file of the message: an image part if it is an image with a link, else a file."""
    item = expect(item, dict, path)
    name = optional(item, "file_name", str, path)
    link = optional(item, "preview_url", str, path) or optional(item, "thumbnail_url", str, path)
    extra = without(item, frozenset({"file_name"}))
    if item.get("file_kind") == "image" and link:
        return image_part(link, extra={**extra, "filename": name})
    return file_part(name, url=link, extra=extra)
