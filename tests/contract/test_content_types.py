"""Typed message content: every built-in type is checked on write, the same on every
backend; namespaced custom types pass; reading never checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from convstore import ConversationStore, InvalidInputError
from convstore.content_types import MESSAGE_TYPES, register_message_type

VALID: dict[str, list[Any]] = {
    "text": [
        "plain 你好",
        {"type": "code_suggestion", "code": "x = 1"},
        [{"type": "text", "text": "a", "annotations": []}, {"type": "unknown"}, "bare", 3],
    ],
    "image": [
        {"url": "https://example.invalid/cat.png", "detail": "high"},
        {"type": "image", "attachment_id": "att_1", "mime_type": "image/png", "width": 64},
    ],
    "file": [{"attachment_id": "att_2", "filename": "report.pdf", "mime_type": "application/pdf"}],
    "tool_call": [
        {"id": "call_1", "name": "search", "arguments": '{"q": "x"}'},
        [
            {"type": "tool_call", "id": "call_1", "name": "a", "arguments": {"q": 1}},
            {"type": "tool_call", "id": "call_2", "name": "b", "arguments": {}},
        ],
    ],
    "tool_result": [
        {"tool_call_id": "call_1", "content": "42"},
        {"tool_call_id": "call_2", "content": [{"type": "text", "text": "no"}], "is_error": True},
    ],
    "mcp_call": [{"server": "files", "name": "read", "arguments": {"path": "/a"}, "id": "m1"}],
    "mcp_result": [
        {"call_id": "m1", "content": [{"type": "text", "text": "hi"}], "structured_content": {}}
    ],
    "workflow": [{"workflow_id": "wf1", "status": "running", "step": "fetch", "inputs": {}}],
    "system": ["You are terse.", [{"type": "text", "text": "Be kind.", "cache_control": {}}]],
    "processing": [
        {"stage": "embedding", "percent": 42.5},
        {"stage": "x", "current": 3, "total": 9},
    ],
    "streaming_response": ["partial reply"],
    "reasoning": ["first, ...", {"text": "first, ...", "summary": "thought"}],
    "error": [
        "the model timed out",
        {"message": "timeout", "code": "E_TIMEOUT", "retryable": True},
    ],
    "multimodal": [
        [
            {"type": "text", "text": "look"},
            {"type": "image", "url": "https://example.invalid/x.png"},
            {"type": "file", "url": "https://example.invalid/a.pdf"},
            {"type": "reasoning", "text": "r", "summary": None},
            {"type": "acme/chart", "series": [1, 2]},
        ]
    ],
}

INVALID: dict[str, tuple[Any, str]] = {  # (content, what the error must name)
    "text": ([{"type": "image", "mime_type": "image/png"}], "content[0]: url or attachment_id"),
    "image": ({"url": "data:image/png;base64,AAAA"}, "inline data"),
    "file": ({"filename": "a.txt"}, "url or attachment_id is required"),
    "tool_call": ({"id": "c", "arguments": "{}"}, "content.name: Field required"),
    "tool_result": ({"tool_call_id": "c", "content": "x", "is_error": "yes"}, "content.is_error"),
    "mcp_call": ({"server": "s", "name": "n", "arguments": "[]"}, "content.arguments"),
    "mcp_result": ({"content": "x"}, "content.call_id: Field required"),
    "workflow": ({"workflow_id": "w", "status": "done"}, "content.status"),
    "system": ([{"type": "text"}], "content[0].text: Field required"),
    "processing": ({"stage": "s", "percent": 101}, "content.percent"),
    "streaming_response": ({"text": "x"}, "content: must be a string, not an object"),
    "reasoning": ({"summary": "s"}, "content.text: Field required"),
    "error": ({"code": "E"}, "content.message: Field required"),
    "multimodal": ([{"type": "text", "text": "a"}, {"kind": "x"}], "content[1]: must be a part"),
}


@pytest.fixture
def chat_id(store: ConversationStore) -> str:
    return store.create_conversation("chat").id


@pytest.fixture
def registry() -> Iterator[dict[str, Any]]:
    """The registry, restored to its built-in types after the test."""
    before = dict(MESSAGE_TYPES)
    yield MESSAGE_TYPES
    MESSAGE_TYPES.clear()
    MESSAGE_TYPES.update(before)


def test_fourteen_built_in_types_each_with_examples() -> None:
    assert len(MESSAGE_TYPES) == 14
    assert set(VALID) == set(INVALID) == set(MESSAGE_TYPES)


@pytest.mark.parametrize("type_name", sorted(VALID))
def test_valid_content_is_stored_and_read_back_verbatim(
    store: ConversationStore, chat_id: str, type_name: str
) -> None:
    for content in VALID[type_name]:
        message = store.append_message(chat_id, "assistant", content, type=type_name)
        stored = store.get_message(chat_id, message.id)
        assert stored is not None
        assert (stored.type, stored.content) == (type_name, content)
        assert list(_keys(stored.content)) == list(_keys(content))  # order kept too


@pytest.mark.parametrize("type_name", sorted(INVALID))
def test_invalid_content_is_refused_naming_the_type_and_field(
    store: ConversationStore, chat_id: str, type_name: str
) -> None:
    content, named = INVALID[type_name]
    with pytest.raises(InvalidInputError, match=f"'{type_name}'") as raised:
        store.append_message(chat_id, "assistant", content, type=type_name)
    assert named in raised.value.message
    assert raised.value.code == "INVALID_INPUT"
    assert store.get_messages(chat_id) == []


def test_a_bad_message_in_a_batch_is_named_by_index_and_nothing_is_added(
    store: ConversationStore, chat_id: str
) -> None:
    batch: list[dict[str, Any]] = [
        {"role": "user", "content": "fine"},
        {"role": "assistant", "content": {"id": "c", "name": "f"}, "type": "tool_call"},
    ]
    with pytest.raises(InvalidInputError, match=r"messages\[1\].*content.arguments"):
        store.append_messages(chat_id, batch)
    with pytest.raises(InvalidInputError, match=r"messages\[0\].*'image'"):
        store.create_conversation("c", initial_messages=[{**batch[0], "type": "image"}])
    assert store.get_messages(chat_id) == []
    assert store.count_conversations() == 1


@pytest.mark.parametrize("type_name", ["x-note", "acme/chart", "acme/charts/v2"])
def test_namespaced_custom_types_are_stored_unchecked(
    store: ConversationStore, chat_id: str, type_name: str
) -> None:
    for content in ("text", {"anything": [1, {"type": "image"}]}, [{"type": "image"}]):
        message = store.append_message(chat_id, "assistant", content, type=type_name)
        stored = store.get_message(chat_id, message.id)
        assert stored is not None
        assert (stored.type, stored.content) == (type_name, content)


@pytest.mark.parametrize("type_name", ["chart", "x-", "/chart", "acme/", "Text", ""])
def test_unknown_plain_types_are_refused_with_the_known_ones(
    store: ConversationStore, chat_id: str, type_name: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        store.append_message(chat_id, "user", "hi", type=type_name)
    assert "not a known message type" in raised.value.message
    assert all(name in raised.value.message for name in MESSAGE_TYPES)
    assert store.get_messages(chat_id) == []


class Chart(BaseModel):
    title: str
    series: list[float]


def test_a_registered_type_is_checked_and_earlier_messages_stay_readable(
    store: ConversationStore, chat_id: str, registry: dict[str, Any]
) -> None:
    early = store.append_message(chat_id, "assistant", {"series": "bad"}, type="acme/chart")
    register_message_type("acme/chart", Chart)
    assert "acme/chart" in registry
    with pytest.raises(InvalidInputError, match=r"'acme/chart'.*content.title: Field required"):
        store.append_message(chat_id, "assistant", {"series": [1.0]}, type="acme/chart")
    good = {"title": "t", "series": [1.0, 2.5], "color": "red"}
    later = store.append_message(chat_id, "assistant", good, type="acme/chart")
    assert [m.content for m in store.get_messages(chat_id)] == [early.content, later.content]
    assert store.get_message(chat_id, early.id) == early  # read, never checked again


def test_registering_unions_plain_names_and_redefinitions(registry: dict[str, Any]) -> None:
    register_message_type("chart", str | Chart)
    with pytest.raises(InvalidInputError, match="already registered"):
        register_message_type("chart", Chart)
    register_message_type("chart", list[Chart], replace=True)
    assert registry["chart"].schema == list[Chart]
    with pytest.raises(InvalidInputError, match="several arms"):
        register_message_type("x-two", Chart | dict[str, Any])
    with pytest.raises(InvalidInputError, match="not a string, object or list"):
        register_message_type("x-number", int)
    with pytest.raises(InvalidInputError, match="1 to 64 characters"):
        register_message_type("", Chart)
    assert "x-two" not in registry and "x-number" not in registry


def test_text_accepts_any_json_and_checks_only_recognised_parts(
    store: ConversationStore, chat_id: str
) -> None:
    loose = [{"type": "image"}, {"type": "text", "text": 1}]
    store.append_message(chat_id, "user", {"type": "image"})  # an object: never a part
    with pytest.raises(InvalidInputError, match=r"content\[1\].text"):
        store.append_message(chat_id, "user", [{"type": "image", "url": "u"}, loose[1]])
    with pytest.raises(InvalidInputError, match=r"content\[0\]: url or attachment_id"):
        store.append_message(chat_id, "user", loose)
    assert len(store.get_messages(chat_id)) == 1


def test_streams_take_types_whose_content_may_be_text(
    store: ConversationStore, chat_id: str
) -> None:
    for type_name in ("streaming_response", "reasoning", "acme/live"):
        begun = store.begin_stream(chat_id, type=type_name)
        store.append_chunk(chat_id, begun.id, "so far")
        done = store.finalize_stream(chat_id, begun.id)
        assert (done.type, done.content) == (type_name, "so far")
    with pytest.raises(InvalidInputError, match=r"'tool_call'.*must be an object or a list"):
        store.begin_stream(chat_id, type="tool_call")
    assert len(store.get_messages(chat_id)) == 3


def _keys(content: Any) -> list[Any]:
    """The keys of content's objects, in order, depth first."""
    if isinstance(content, dict):
        return [k for key, value in content.items() for k in (key, *_keys(value))]
    if isinstance(content, list):
        return [k for item in content for k in _keys(item)]
    return []


def test_an_edit_must_fit_the_message_type(store: ConversationStore) -> None:
    chat = store.create_conversation("c").id
    call = store.append_message(
        chat, "assistant", {"id": "call_1", "name": "search", "arguments": "{}"}, type="tool_call"
    )
    with pytest.raises(InvalidInputError, match="tool_call"):
        store.update_message(chat, call.id, content={"id": "call_1"})
    assert store.get_message(chat, call.id) == call
    edited = store.update_message(
        chat, call.id, content={"id": "call_1", "name": "lookup", "arguments": "{}"}
    )
    assert edited is not None and isinstance(edited.content, dict)
    assert edited.content["name"] == "lookup"
