"""Builders of ChatGPT and Claude data exports, written from their documented shapes."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

T0 = 1_700_000_000.0  # the time conversations start at


class ChatGPT:
    """One ChatGPT conversation: a mapping of nodes under an empty root node."""

    def __init__(self, title: str | None, conversation_id: str, **fields: Any) -> None:
        self.conversation_id = conversation_id
        self.fields: dict[str, Any] = {
            "title": title,
            "create_time": T0,
            "update_time": T0 + 600,
            "default_model_slug": "gpt-4o",
            **fields,
        }
        self.mapping: dict[str, Any] = {
            "root": {"id": "root", "message": None, "parent": None, "children": []}
        }
        self.current: str | None = "root"

    def node(
        self,
        node_id: str,
        parent: str,
        role: str,
        content: str | dict[str, Any],
        *,
        at: float | None = 0.0,
        model: str | None = None,
        hidden: bool = False,
        recipient: str = "all",
        name: str | None = None,
        status: str = "finished_successfully",
        **metadata: Any,
    ) -> str:
        """Add a message under ``parent``; it becomes the current node. ``at`` is seconds
        after the conversation's start (None: no create_time); text content is a string."""
        if isinstance(content, str):
            content = {"content_type": "text", "parts": [content]}
        meta = dict(metadata)
        if model is not None:
            meta["model_slug"] = model
        if hidden:
            meta["is_visually_hidden_from_conversation"] = True
        message: dict[str, Any] = {
            "id": node_id,
            "author": {"role": role, "name": name, "metadata": {}},
            "create_time": None if at is None else T0 + at,
            "update_time": None,
            "content": content,
            "status": status,
            "end_turn": role == "assistant" or None,
            "weight": 0.0 if hidden else 1.0,
            "metadata": meta,
            "recipient": recipient,
            "channel": None,
        }
        self.mapping[node_id] = {
            "id": node_id,
            "message": message,
            "parent": parent,
            "children": [],
        }
        self.mapping[parent]["children"].append(node_id)
        self.current = node_id
        return node_id

    def system(self) -> str:
        """The hidden empty system message ChatGPT puts first."""
        return self.node("system", "root", "system", "", at=None, hidden=True)

    def to_json(self) -> dict[str, Any]:
        """The conversation as conversations.json holds it."""
        return {
            "moderation_results": [],
            "plugin_ids": None,
            "gizmo_id": None,
            "is_archived": False,
            "safe_urls": [],
            **self.fields,
            "mapping": self.mapping,
            "current_node": self.current,
            "conversation_id": self.conversation_id,
            "id": self.conversation_id,
        }


def code(text: str, language: str = "python") -> dict[str, Any]:
    return {
        "content_type": "code",
        "language": language,
        "response_format_name": None,
        "text": text,
    }


def execution_output(text: str) -> dict[str, Any]:
    return {"content_type": "execution_output", "text": text}


def multimodal(*parts: Any) -> dict[str, Any]:
    return {"content_type": "multimodal_text", "parts": list(parts)}


def image_pointer(pointer: str, width: int = 512, height: int = 512) -> dict[str, Any]:
    return {
        "content_type": "image_asset_pointer",
        "asset_pointer": pointer,
        "size_bytes": 1234,
        "width": width,
        "height": height,
        "fovea": None,
        "metadata": None,
    }


class Claude:
    """One Claude conversation: chat_messages linked by parent uuids."""

    def __init__(self, name: str, uuid: str, *, linear: bool = False, **fields: Any) -> None:
        self.uuid = uuid
        self.linear = linear  # an older export: no parent uuids, no current leaf
        self.fields: dict[str, Any] = {
            "name": name,
            "summary": "",
            "created_at": iso(0),
            "updated_at": iso(600),
            "account": {"uuid": "acc-1"},
            **fields,
        }
        self.messages: list[dict[str, Any]] = []
        self.current: str | None = None

    def message(
        self,
        uuid: str,
        sender: str,
        content: str | list[dict[str, Any]],
        *,
        parent: str | None = None,
        at: float = 0.0,
        attachments: list[dict[str, Any]] | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> str:
        """Add a message (under ``parent``, else under the current one); it becomes the
        current leaf. Text content is one text block."""
        blocks = [text_block(content)] if isinstance(content, str) else content
        text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
        item: dict[str, Any] = {
            "uuid": uuid,
            "text": text,
            "content": blocks,
            "sender": sender,
            "created_at": iso(at),
            "updated_at": iso(at),
            "attachments": attachments or [],
            "files": files or [],
        }
        if not self.linear:
            item["parent_message_uuid"] = parent or self.current or ROOT
        self.messages.append(item)
        self.current = uuid
        return uuid

    def to_json(self) -> dict[str, Any]:
        """The conversation as conversations.json holds it."""
        value = {"uuid": self.uuid, **self.fields, "chat_messages": self.messages}
        if not self.linear:
            value["current_leaf_message_uuid"] = self.current
        return value


ROOT = "00000000-0000-4000-8000-000000000000"


def iso(seconds: float) -> str:
    """The ISO 8601 text claude.ai writes, ``seconds`` after the conversations' start."""
    return datetime.fromtimestamp(T0 + seconds, UTC).isoformat().replace("+00:00", "Z")


def text_block(text: str) -> dict[str, Any]:
    return {
        "type": "text",
        "text": text,
        "start_timestamp": iso(0),
        "stop_timestamp": iso(1),
        "citations": [],
    }


def write_export(path: Path, conversations: list[Any]) -> Path:
    """conversations.json holding ``conversations`` (builders or raw values)."""
    path.write_text(json.dumps([_raw(c) for c in conversations]), "utf-8")
    return path


def write_zip(path: Path, conversations: list[Any], member: str = "conversations.json") -> Path:
    """An export zip: conversations.json beside the other files an export holds."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as packed:
        packed.writestr("user.json", json.dumps({"id": "user-1"}))
        packed.writestr("chat.html", "<html></html>")
        packed.writestr(member, json.dumps([_raw(c) for c in conversations]))
    return path


def _raw(conversation: Any) -> Any:
    return conversation.to_json() if isinstance(conversation, ChatGPT | Claude) else conversation
