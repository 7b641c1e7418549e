"""Bad input: a typed error with a clear message, and nothing changed in the store."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from convstore import ConversationStore, InvalidInputError, PersistConversationManager, Usage
from convstore.store import StoredRecord
from convstore.validation import MAX_INT


def snapshot(store: ConversationStore) -> tuple[Any, ...]:
    """Everything observable about the store, to compare before and after."""
    conversations = store.list_conversations()
    messages = [store.get_messages(c.id) for c in conversations]
    return (conversations, messages, store.count_messages())


class Unserializable:
    pass


Call = Callable[[ConversationStore], object]


def cases(chat: str, message: str) -> list[tuple[str, Call, str]]:
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
        *beyond_what_backends_hold(chat),
    ]


def beyond_what_backends_hold(chat: str) -> list[tuple[str, Call, str]]:
    """Values one backend or another cannot store or compare: refused on all of them."""
    return [
        (
            "a Usage with a lone surrogate",
            lambda s: s.append_message(chat, "assistant", "x", usage=Usage(model="\ud800")),
            "usage.model contains a lone surrogate",
        ),
        (
            "a Usage past 64 bits",
            lambda s: s.append_message(chat, "assistant", "x", usage=Usage(prompt_tokens=2**63)),
            "usage.prompt_tokens",
        ),
        (
            "usage past 64 bits",
            lambda s: s.append_message(chat, "user", "x", usage={"completion_tokens": 2**70}),
            "usage.completion_tokens",
        ),
        (
            "content integer past 64 bits",
            lambda s: s.append_message(chat, "user", {"n": [2**63]}),
            r"content\.n\[0\] holds an integer outside",
        ),
        (
            "metadata integer below 64 bits",
            lambda s: s.update_conversation(chat, metadata={"n": -(2**63) - 1}),
            "integer outside",
        ),
        (
            "NUL in a metadata key",
            lambda s: s.update_conversation(chat, metadata={"a": {"k\x00": 1}}),
            "metadata.a has a key that contains a NUL",
        ),
        (
            "long metadata key",
            lambda s: s.create_conversation("n", metadata={"k" * 1025: 1}),
            "limit is 1024",
        ),
        (
            "too many members",
            lambda s: s.append_message(chat, "user", [[0] * 60_000, [0] * 60_000]),
            "more than 100000 members",
        ),
        ("offset past 64 bits", lambda s: s.list_conversations(offset=2**63), "offset"),
        ("cursor past 64 bits", lambda s: s.get_messages(chat, before_seq=2**63), "before_seq"),
        ("feed past 64 bits", lambda s: s.changes_since(2**63), "after"),
        (
            "filter value past 64 bits",
            lambda s: s.list_conversations(filters={"metadata": {"n": 2**63}}),
            r"filters\.metadata",
        ),
        (
            "filter value with a lone surrogate",
            lambda s: s.search_messages("x", filters={"metadata": {"n": "\udfff"}}),
            "surrogate",
        ),
        (
            "time past what a float holds",
            lambda s: s.list_conversations(filters={"created_after": 10**400}),
            "epoch seconds",
        ),
        (
            "an endless record lifetime",
            lambda s: s.put_record("probe", "k", {}, ttl=math.inf),
            r"ttl must be None or a positive number \(finite\)",
        ),
        (
            "an imported record expiring at NaN",
            lambda s: s.import_records([StoredRecord("probe", "k", {}, math.nan)]),
            "expires_at must be None or epoch seconds",
        ),
        (
            "record value with a lone surrogate",
            lambda s: s.put_record("probe", "k", {"v": ["\ud800"]}),
            r"value\.v\[0\] contains a lone surrogate",
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
    assert store.list_records("probe") == []


def test_streams_refuse_what_backends_cannot_hold(store: ConversationStore) -> None:
    chat = store.create_conversation("chat").id
    reply = store.begin_stream(chat).id
    store.append_chunks(chat, reply, ["kept"])
    before = (snapshot(store), store.get_chunks(chat, reply))
    with pytest.raises(InvalidInputError, match=r"deltas\[1\] contains a lone surrogate"):
        store.append_chunks(chat, reply, ["fine", "\ud800"])
    with pytest.raises(InvalidInputError, match="after"):
        store.get_chunks(chat, reply, after=2**63)
    with pytest.raises(InvalidInputError, match=r"usage\.prompt_tokens"):
        store.finalize_stream(chat, reply, usage={"prompt_tokens": 2**63})
    with pytest.raises(InvalidInputError, match="finish_reason contains a NUL"):
        store.finalize_stream(chat, reply, finish_reason="st\x00p")
    assert (snapshot(store), store.get_chunks(chat, reply)) == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": "\ud800"}, "name contains a lone surrogate"),
        ({"metadata": {"n": 2**70}}, "metadata.n holds an integer outside"),
        ({"prompt_tokens": 2**63}, "prompt_tokens must be an integer"),
        ({"version": 2**31}, "version must be an integer from 0 to 2147483647"),
        ({"updated_at": math.inf}, "updated_at must be epoch seconds"),
    ],
)
def test_an_import_is_checked_like_a_write(
    store: ConversationStore, change: dict[str, Any], expected: str
) -> None:
    chat = store.create_conversation("chat")
    store.append_message(chat.id, "user", "hello")
    exported = store.export_conversation(chat.id)
    assert exported is not None
    conversation, messages = exported
    store.delete_conversation(chat.id)
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match=expected):
        store.import_conversation(conversation.model_copy(update=change), messages)
    bad_message = messages[0].model_copy(update={"content": {"k": "\x00"}})
    with pytest.raises(InvalidInputError, match=r"message .*: content\.k contains a NUL"):
        store.import_conversation(conversation, [bad_message])
    assert snapshot(store) == before


def test_token_totals_past_64_bits_are_refused(store: ConversationStore) -> None:
    chat = store.create_conversation("chat").id
    store.append_message(chat, "assistant", "a", usage={"prompt_tokens": MAX_INT})
    reply = store.begin_stream(chat).id
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="prompt_tokens past"):
        store.finalize_stream(chat, reply, usage={"prompt_tokens": 1})
    assert snapshot(store) == before
    store.finalize_stream(chat, reply, usage={"completion_tokens": MAX_INT})
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="completion_tokens past"):
        store.append_messages(
            chat,
            [
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c", "usage": {"completion_tokens": 1}},
            ],
        )
    assert snapshot(store) == before
    conversation = store.get_conversation(chat)
    assert conversation is not None
    assert (conversation.prompt_tokens, conversation.completion_tokens) == (MAX_INT, MAX_INT)


def test_the_manager_refuses_what_backends_cannot_hold(manager: PersistConversationManager) -> None:
    chat = manager.create_conversation("chat")
    calls: list[Call] = [
        lambda _: manager.append_messages(
            chat, [{"role": "assistant", "content": "x", "usage": {"model": "\ud800"}}]
        ),
        lambda _: manager.append_message(chat, "user", {"n": 2**63}),
        lambda _: manager.update_conversation(chat, metadata={"k" * 2000: 1}),
        lambda _: manager.create_conversation("n\x00"),
    ]
    before = snapshot(manager.store)
    for call in calls:
        with pytest.raises(InvalidInputError):
            call(manager.store)
    assert snapshot(manager.store) == before
