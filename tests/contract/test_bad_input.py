"""Bad input: a typed error with a clear message, and nothing changed in the store."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from convstore import ConversationStore, InvalidInputError


def snapshot(store: ConversationStore) -> tuple[Any, ...]:
    """Everything observable about the store, to compare before and after."""
    conversations = store.list_conversations()
    messages = [store.get_messages(c.id) for c in conversations]
    return (conversations, messages, store.count_messages())


class Unserializable:
    pass


def cases(chat: str, message: str) -> list[tuple[str, Callable[[ConversationStore], object], str]]:
    return [
        ("unknown role", lambda s: s.append_message(chat, "robot", "x"), "role must be one of"),
        ("role not str", lambda s: s.append_message(chat, 1, "x"), "role must be one of"),  # type: ignore[arg-type]
        (
            "object content",
            lambda s: s.append_message(chat, "user", Unserializable()),
            "content must be",
        ),
        (
            "nested object",
            lambda s: s.append_message(chat, "user", {"a": [Unserializable()]}),
            r"content\.a\[0\]",
        ),
        ("NaN", lambda s: s.append_message(chat, "user", {"x": math.nan}), "not valid JSON"),
        ("infinity", lambda s: s.append_message(chat, "user", [math.inf]), "not valid JSON"),
        ("int key", lambda s: s.append_message(chat, "user", {1: "a"}), "keys must be strings"),
        ("tuple", lambda s: s.append_message(chat, "user", {"t": (1, 2)}), "not JSON-serializable"),
        ("bytes", lambda s: s.append_message(chat, "user", b"raw"), "content must be"),
        ("lone surrogate", lambda s: s.append_message(chat, "user", "\ud800"), "surrogate"),
        ("NUL in content", lambda s: s.append_message(chat, "user", "a\x00b"), "NUL"),
        ("NUL in a name", lambda s: s.create_conversation("a\x00"), "NUL"),
        ("NUL in metadata", lambda s: s.create_conversation("a", metadata={"k": "\x00"}), "NUL"),
        ("too deep", lambda s: s.append_message(chat, "user", _deep(150)), "nested more than"),
        (
            "oversized",
            lambda s: s.append_message(chat, "user", "x" * 2_000_000),
            "max_message_size",
        ),
        (
            "traversal id",
            lambda s: s.append_message(chat, "user", "x", message_id="../x"),
            "invalid",
        ),
        ("long id", lambda s: s.append_message(chat, "user", "x", message_id="a" * 200), "invalid"),
        ("bad conversation id", lambda s: s.get_messages("../../etc/passwd"), "invalid"),
        ("id not str", lambda s: s.get_conversation(42), "must be a string"),  # type: ignore[arg-type]
        ("name not str", lambda s: s.create_conversation(123), "name must be a string"),  # type: ignore[arg-type]
        ("name too long", lambda s: s.create_conversation("n" * 5000), "limit is"),
        ("description", lambda s: s.create_conversation("n", description=5), "description"),  # type: ignore[arg-type]
        (
            "metadata list",
            lambda s: s.create_conversation("n", metadata=[1]),
            "metadata must be a dict",
        ),  # type: ignore[arg-type]
        (
            "metadata NaN",
            lambda s: s.update_conversation(chat, metadata={"x": math.nan}),
            "not valid JSON",
        ),
        ("rename to int", lambda s: s.update_conversation(chat, name=3), "name must be a string"),  # type: ignore[arg-type]
        (
            "edit to NaN",
            lambda s: s.update_message(chat, message, content=[math.nan]),
            "not valid JSON",
        ),
        (
            "edit to object",
            lambda s: s.update_message(chat, message, content=Unserializable()),
            "content must be",
        ),
        (
            "usage negative",
            lambda s: s.append_message(chat, "user", "x", usage={"prompt_tokens": -1}),
            "usage",
        ),
        (
            "usage unknown",
            lambda s: s.append_message(chat, "user", "x", usage={"cost": 1}),
            "unknown fields",
        ),
        ("batch not list", lambda s: s.append_messages(chat, "hello"), "list of messages"),  # type: ignore[arg-type]
        ("batch item", lambda s: s.append_messages(chat, [{"role": "user"}]), "no 'content'"),
        (
            "batch extra field",
            lambda s: s.append_messages(chat, [{"role": "user", "content": "x", "x": 1}]),
            "unknown fields",
        ),
        ("negative limit", lambda s: s.get_messages(chat, limit=-1), "limit"),
        ("bool offset", lambda s: s.get_messages(chat, offset=True), "offset"),  # type: ignore[arg-type]
        ("huge limit", lambda s: s.list_conversations(limit=10**9), "limit"),
        ("bad cursor", lambda s: s.get_messages(chat, before_seq="5"), "before_seq"),  # type: ignore[arg-type]
        ("bad order", lambda s: s.list_conversations(order_by="size"), "order_by"),  # type: ignore[arg-type]
        ("ids not list", lambda s: s.get_messages(chat, message_ids="abc"), "message_ids"),
        (
            "filter key",
            lambda s: s.list_conversations(filters={"colour": 1}),
            "unknown conversation filter",
        ),
        ("filter type", lambda s: s.list_conversations(filters=[1]), "filters must be a dict"),  # type: ignore[arg-type]
        (
            "metadata path",
            lambda s: s.list_conversations(filters={"metadata": {"a..b": 1}}),
            "metadata key",
        ),
        (
            "metadata value",
            lambda s: s.list_conversations(filters={"metadata": {"a": [1]}}),
            "must be a string",
        ),
        (
            "time filter",
            lambda s: s.list_conversations(filters={"created_after": "yesterday"}),
            "epoch seconds",
        ),
        (
            "ids filter",
            lambda s: s.list_conversations(filters={"conversation_ids": "abc"}),
            "list of ids",
        ),
        (
            "status filter",
            lambda s: s.search_messages("x", filters={"status": "gone"}),
            "status must be",
        ),
    ]


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"v": value}
    return value


def test_every_bad_input_is_refused_and_changes_nothing(store: ConversationStore) -> None:
    chat = store.create_conversation("chat", metadata={"k": "v"}).id
    message = store.append_message(chat, "user", "original").id
    before = snapshot(store)
    for name, call, expected in cases(chat, message):
        with pytest.raises(InvalidInputError, match=expected) as raised:
            call(store)
        assert raised.value.code in ("INVALID_INPUT", "INVALID_CONFIG"), name
        assert snapshot(store) == before, name
