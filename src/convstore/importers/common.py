"""What the importers share: a conversation read from an export as a tree of source
messages, the typed content parts they map to, and its turning into store records.

A format module reads one conversation of its export into a :class:`SourceConversation`
(every node of the tree, hidden ones marked with why they are skipped);
:func:`build_records` then makes the Conversation and Message records the store imports:
skipped nodes left out and their children re-attached to the nearest kept ancestor, seq
numbers in creation order with parents before children, missing times inherited, the
head moved to its nearest kept ancestor.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from convstore.importers.source import FieldError
from convstore.models import Conversation, JSONContent, Message, MessageStatus, Role, Usage
from convstore.validation import MAX_NAME_LENGTH

UNTITLED = "Untitled"


@dataclass
class SourceMessage:
    """One node of a conversation's tree as the export gives it."""

    id: str  # the export's id of the node
    path: str  # where the node is in the export, for messages: "mapping['n3']"
    parent: str | None  # the export's id of its parent; None for a root
    role: Role = Role.USER
    content: JSONContent = ""
    type: str = "text"
    status: MessageStatus = MessageStatus.COMPLETE
    created_at: float | None = None
    updated_at: float | None = None
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None  # why the node is not imported ("hidden message"...)


@dataclass
class SourceConversation:
    """One conversation of an export, read but not yet mapped to records."""

    id: str  # the export's id of the conversation
    title: str
    created_at: float | None
    updated_at: float | None
    head: str | None  # the export's current node; None if it names none
    messages: list[SourceMessage]  # every node, in the export's order
    metadata: dict[str, Any]  # the conversation's metadata, "source" included
    description: str | None = None


@dataclass
class Built:
    """The records of one conversation, and what building them left out."""

    conversation: Conversation
    messages: list[Message]
    skipped: Counter[str]
    branches: int  # alternative branches: leaves beyond the first


# typed content parts ------------------------------------------------------------------


def text_part(text: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"type": "text", "text"}``, with the source's other fields kept."""
    return {**(extra or {}), "type": "text", "text": text}


def image_part(
    url: str | None, *, mime_type: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An image by reference (never inline data)."""
    return {
        **(extra or {}),
        "type": "image",
        "url": url,
        "attachment_id": None,
        "mime_type": mime_type,
        "detail": None,
    }


def file_part(
    filename: str | None,
    *,
    url: str | None = None,
    mime_type: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A file by reference (or by name only, when the export holds nothing more)."""
    return {
        **(extra or {}),
        "type": "file",
        "url": url,
        "attachment_id": None,
        "filename": filename,
        "mime_type": mime_type,
    }


def tool_call_part(
    call_id: str, name: str, arguments: str | dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A call of a tool by the assistant."""
    return {
        **(extra or {}),
        "type": "tool_call",
        "id": call_id,
        "name": name,
        "arguments": arguments,
    }


def tool_result_part(
    call_id: str,
    content: str | list[Any],
    *,
    is_error: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a tool call returned."""
    part = {**(extra or {}), "type": "tool_result", "tool_call_id": call_id, "content": content}
    if is_error is not None:
        part["is_error"] = is_error
    return part


def reasoning_part(
    text: str, summary: str | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The model's reasoning (thinking), with its summary if the export has one."""
    return {**(extra or {}), "type": "reasoning", "text": text, "summary": summary}


_KNOWN_PARTS = frozenset({"text", "image", "file", "tool_call", "tool_result", "reasoning"})


def collapse(parts: list[Any]) -> tuple[JSONContent, dict[str, Any] | None]:
    """Message content for ``parts``: a lone text part becomes its text (the part's other
    fields returned, to be kept in metadata), no parts an empty text, else the list."""
    if not parts:
        return "", None
    if len(parts) == 1 and isinstance(parts[0], dict) and parts[0].get("type") == "text":
        extra = {k: v for k, v in parts[0].items() if k not in ("type", "text")}
        return parts[0]["text"], extra or None
    return parts, None


def message_type(parts: list[Any]) -> str:
    """The message's type: its first part that is neither text nor reasoning, else text."""
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _KNOWN_PARTS and kind not in ("text", "reasoning"):
            return str(kind)
    return "text"


def texts(parts: list[Any]) -> list[str]:
    """The text of each text part."""
    return [p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text"]


def text_or_none(value: object) -> str | None:
    """``value`` if it is a string that is not empty, else None."""
    return value if isinstance(value, str) and value else None


def conversation_name(title: str | None, key: str, fields: dict[str, Any]) -> str:
    """A conversation's name: its title, cut to the longest name the store keeps (the
    whole title then kept in ``fields`` under ``key``), or "Untitled" if it has none."""
    if not title:
        return UNTITLED
    if len(title) > MAX_NAME_LENGTH:
        fields[key] = title
        return title[:MAX_NAME_LENGTH]
    return title


# ids ----------------------------------------------------------------------------------


def derived_id(*names: str) -> str:
    """A stable 26-character id made from ``names`` (for source ids that are not valid
    convstore ids, or that another conversation already uses)."""
    digest = hashlib.sha256("\x1f".join(names).encode("utf-8", "surrogatepass")).digest()
    return base64.b32hexencode(digest).decode()[:26].lower()


# building the records -----------------------------------------------------------------


def build_records(
    source: SourceConversation,
    *,
    conversation_id: str,
    message_id: dict[str, str],
    owner_id: str | None,
    version: int = 1,
) -> Built:
    """The records of ``source``, with the ids given (``message_id`` maps the export's
    node ids to store ids). Raises FieldError if the tree repeats an id, names a parent it
    does not hold or goes round in a cycle."""
    nodes = _index(source.messages)
    root_time = _first_time(source)
    times, kept_parent = _resolve(nodes, root_time)
    kept = [m for m in source.messages if m.skip is None]
    order = _creation_order(kept, kept_parent, times)
    seq = {node_id: number for number, node_id in enumerate(order, 1)}
    messages = [
        _message(nodes[node_id], conversation_id, message_id, kept_parent, times, seq[node_id])
        for node_id in order
    ]
    parents = {m.parent_id for m in messages}
    leaves = [m for m in messages if m.id not in parents]
    head = _head(source.head, nodes, kept_parent, message_id, leaves)
    created = source.created_at if source.created_at is not None else root_time
    updated = max(
        source.updated_at if source.updated_at is not None else created,
        max((m.updated_at for m in messages), default=created),
    )
    conversation = Conversation(
        id=conversation_id,
        name=source.title,
        description=source.description,
        owner_id=owner_id,
        head_message_id=head,
        created_at=created,
        updated_at=updated,
        metadata=source.metadata,
        version=version,
        message_count=len(messages),
        last_seq=len(messages),
    )
    skipped = Counter(m.skip for m in source.messages if m.skip is not None)
    return Built(conversation, messages, skipped, max(len(leaves) - 1, 0))


def _index(messages: list[SourceMessage]) -> dict[str, SourceMessage]:
    nodes: dict[str, SourceMessage] = {}
    for message in messages:
        if message.id in nodes:
            raise FieldError(message.path, f"the id {message.id!r} repeats")
        nodes[message.id] = message
    for message in messages:
        if message.parent is not None and message.parent not in nodes:
            raise FieldError(message.path, f"its parent {message.parent!r} is not in the export")
    return nodes


def _first_time(source: SourceConversation) -> float:
    """The time a node without one inherits at the top: the conversation's creation, else
    its earliest message, else its last update."""
    if source.created_at is not None:
        return source.created_at
    times = [m.created_at for m in source.messages if m.created_at is not None]
    if times:
        return min(times)
    return source.updated_at if source.updated_at is not None else 0.0


def _resolve(
    nodes: dict[str, SourceMessage], root_time: float
) -> tuple[dict[str, float], dict[str, str | None]]:
    """Each node's time (its own, else its parent's) and nearest kept ancestor, found
    without recursion; FieldError if the parents go round in a cycle."""
    times: dict[str, float] = {}
    kept_parent: dict[str, str | None] = {}
    for start, first in nodes.items():
        chain: list[str] = []
        node_id: str | None = start
        while node_id is not None and node_id not in times:
            if len(chain) > len(nodes):
                raise FieldError(first.path, "its parents go round in a cycle")
            chain.append(node_id)
            node_id = nodes[node_id].parent
        for node_id in reversed(chain):
            node = nodes[node_id]
            parent = node.parent
            inherited = root_time if parent is None else times[parent]
            times[node_id] = node.created_at if node.created_at is not None else inherited
            if parent is None:
                kept_parent[node_id] = None
            elif nodes[parent].skip is None:
                kept_parent[node_id] = parent
            else:
                kept_parent[node_id] = kept_parent[parent]
    return times, kept_parent


def _creation_order(
    kept: list[SourceMessage], kept_parent: dict[str, str | None], times: dict[str, float]
) -> list[str]:
    """The kept nodes' ids in creation order, every parent before its children; ties go
    by the export's order."""
    position = {m.id: index for index, m in enumerate(kept)}
    children: dict[str | None, list[str]] = {}
    for message in kept:
        children.setdefault(kept_parent[message.id], []).append(message.id)
    ready = [(times[i], position[i], i) for i in children.get(None, [])]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, _, node_id = heapq.heappop(ready)
        order.append(node_id)
        for child in children.get(node_id, []):
            heapq.heappush(ready, (times[child], position[child], child))
    return order


def _message(
    node: SourceMessage,
    conversation_id: str,
    message_id: dict[str, str],
    kept_parent: dict[str, str | None],
    times: dict[str, float],
    seq: int,
) -> Message:
    """The record of a kept node."""
    parent = kept_parent[node.id]
    metadata = node.metadata
    if parent != node.parent:  # re-attached past skipped nodes: say where it hung
        metadata = {**metadata, "source": {**metadata.get("source", {}), "parent": node.parent}}
    if node.model is not None:
        metadata = {**metadata, "model": node.model}
    created = times[node.id]
    values = {
        "id": message_id[node.id],
        "conversation_id": conversation_id,
        "parent_id": None if parent is None else message_id[parent],
        "seq": seq,
        "role": node.role,
        "type": node.type,
        "content": node.content,
        "status": node.status,
        "sender_id": None,
        "created_at": created,
        "updated_at": node.updated_at if node.updated_at is not None else created,
        "metadata": metadata,
        "usage": None if node.model is None else Usage(model=node.model),
    }
    return Message.from_stored(values)


def _head(
    head: str | None,
    nodes: dict[str, SourceMessage],
    kept_parent: dict[str, str | None],
    message_id: dict[str, str],
    leaves: list[Message],
) -> str | None:
    """The store id of the active branch's leaf: the export's current node or its nearest
    kept ancestor; without one, the newest leaf."""
    if head is None or head not in nodes:
        return leaves[-1].id if leaves else None
    kept = head if nodes[head].skip is None else kept_parent[head]
    return None if kept is None else message_id[kept]
