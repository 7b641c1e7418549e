"""Messages: append, read, page, edit and delete, the same on every backend."""

from __future__ import annotations

import pytest

from convstore import (
    ConcurrencyError,
    ConversationNotFoundError,
    ConversationStore,
    InvalidInputError,
    NewMessage,
    Role,
)


@pytest.fixture
def chat_id(store: ConversationStore) -> str:
    return store.create_conversation("chat").id


def test_append_and_read_back_verbatim(store: ConversationStore, chat_id: str) -> None:
    contents = [
        "plain text 你好",
        {
            "type": "code_suggestion",
            "language": "python",
            "code": "x = 1",
            "nested": {"k": [1, 2.5, None, True]},
        },
        [{"type": "text", "text": "a"}, {"type": "image", "url": "https://example.invalid/x.png"}],
        "",
    ]
    appended = [
        store.append_message(chat_id, "user", c, metadata={"i": i}) for i, c in enumerate(contents)
    ]
    read = store.get_messages(chat_id)
    assert [m.content for m in read] == contents
    assert [m.metadata for m in read] == [{"i": i} for i in range(4)]
    assert read == appended
    assert [m.seq for m in read] == [1, 2, 3, 4]
    assert [m.parent_id for m in read] == [None, *[m.id for m in read[:-1]]]
    assert all(isinstance(m.created_at, float) and m.created_at == m.updated_at for m in read)


def test_dict_key_order_is_kept(store: ConversationStore, chat_id: str) -> None:
    content = {"z": 1, "a": 2, "m": {"y": 1, "b": 2}}
    message = store.append_message(chat_id, "assistant", content)
    stored = store.get_message(chat_id, message.id)
    assert stored is not None
    assert list(stored.content) == ["z", "a", "m"]  # type: ignore[arg-type]
    assert list(stored.content["m"]) == ["y", "b"]  # type: ignore[call-overload,index]


def test_conversation_counters_follow_appends(store: ConversationStore, chat_id: str) -> None:
    store.append_message(chat_id, "user", "q", usage={"prompt_tokens": 3, "completion_tokens": 0})
    last = store.append_message(
        chat_id, "assistant", "a", usage={"prompt_tokens": 5, "completion_tokens": 7, "model": "m"}
    )
    chat = store.get_conversation(chat_id)
    assert chat is not None
    assert (chat.message_count, chat.last_seq, chat.head_message_id) == (2, 2, last.id)
    assert (chat.prompt_tokens, chat.completion_tokens) == (8, 7)
    assert chat.version == 3
    assert last.usage is not None and last.usage.model == "m"
    assert store.get_message(chat_id, last.id) == last


def test_append_to_missing_conversation_raises(store: ConversationStore) -> None:
    with pytest.raises(ConversationNotFoundError):
        store.append_message("missing", "user", "x")
    with pytest.raises(ConversationNotFoundError):
        store.append_messages("missing", [{"role": "user", "content": "x"}])
    with pytest.raises(ConversationNotFoundError):
        store.get_messages("missing")
    assert store.count_messages() == 0


def test_append_messages_is_all_or_nothing(store: ConversationStore, chat_id: str) -> None:
    ids = [
        m.id
        for m in store.append_messages(
            chat_id,
            [
                {"role": "user", "content": "1"},
                NewMessage(role="assistant", content={"a": 1}),
                {"role": "tool", "content": ["x"], "metadata": {"t": 1}},
            ],
        )
    ]
    assert [m.id for m in store.get_messages(chat_id)] == ids
    with pytest.raises(InvalidInputError, match=r"messages\[1\]"):
        store.append_messages(
            chat_id, [{"role": "user", "content": "ok"}, {"role": "robot", "content": "bad"}]
        )
    assert len(store.get_messages(chat_id)) == 3
    assert store.append_messages(chat_id, []) == []


def test_retry_with_same_id_is_idempotent(store: ConversationStore, chat_id: str) -> None:
    first = store.append_message(chat_id, "user", {"q": 1}, message_id="client-1")
    again = store.append_message(chat_id, "user", {"q": 1}, message_id="client-1")
    assert again == first
    assert store.get_conversation(chat_id).message_count == 1  # type: ignore[union-attr]
    with pytest.raises(ConcurrencyError):
        store.append_message(chat_id, "user", {"q": 2}, message_id="client-1")
    with pytest.raises(ConcurrencyError):
        store.append_message(chat_id, "assistant", {"q": 1}, message_id="client-1")
    other = store.create_conversation("other").id
    with pytest.raises(ConcurrencyError):
        store.append_message(other, "user", {"q": 1}, message_id="client-1")
    batch = store.append_messages(
        chat_id,
        [
            {"role": "user", "content": {"q": 1}, "message_id": "client-1"},
            {"role": "assistant", "content": "new", "message_id": "client-2"},
            {"role": "assistant", "content": "new", "message_id": "client-2"},
        ],
    )
    assert [m.id for m in batch] == ["client-1", "client-2", "client-2"]
    assert [m.id for m in store.get_messages(chat_id)] == ["client-1", "client-2"]


def test_get_message_checks_conversation(store: ConversationStore, chat_id: str) -> None:
    message = store.append_message(chat_id, "user", "x")
    other = store.create_conversation("other").id
    assert store.get_message(other, message.id) is None
    assert store.get_message(chat_id, "missing") is None


def test_pages_and_cursors(store: ConversationStore, chat_id: str) -> None:
    store.append_messages(chat_id, [{"role": "user", "content": str(i)} for i in range(1, 31)])
    seqs = lambda ms: [m.seq for m in ms]  # noqa: E731
    assert seqs(store.get_messages(chat_id, limit=5)) == [1, 2, 3, 4, 5]
    assert seqs(store.get_messages(chat_id, limit=5, offset=10)) == [11, 12, 13, 14, 15]
    assert seqs(store.get_messages(chat_id, offset=28)) == [29, 30]
    newest = store.get_messages(chat_id, limit=5, newest_first=True)
    assert seqs(newest) == [30, 29, 28, 27, 26]
    older = store.get_messages(chat_id, limit=5, newest_first=True, before_seq=newest[-1].seq)
    assert seqs(older) == [25, 24, 23, 22, 21]
    assert seqs(store.get_messages(chat_id, after_seq=27)) == [28, 29, 30]
    assert seqs(store.get_messages(chat_id, after_seq=10, before_seq=13)) == [11, 12]
    picked = store.get_messages(chat_id)
    ids = [picked[9].id, picked[2].id, "unknown"]
    assert seqs(store.get_messages(chat_id, message_ids=ids)) == [3, 10]


def test_cached_and_uncached_reads_agree(store: ConversationStore, chat_id: str) -> None:
    store.append_messages(chat_id, [{"role": "user", "content": str(i)} for i in range(10)])
    full = store.get_messages(chat_id)  # fills the cache
    assert store.get_messages(chat_id) == full
    assert store.get_messages(chat_id, limit=3, newest_first=True, before_seq=8) == full[6:3:-1]
    store.append_message(chat_id, "assistant", "fresh")
    assert store.get_messages(chat_id)[-1].content == "fresh"
    assert store.health_check()["cache"]["hits"] >= 1


def test_update_message(store: ConversationStore, chat_id: str) -> None:
    message = store.append_message(chat_id, "assistant", {"a": 1}, metadata={"m": 1})
    version = store.get_conversation(chat_id).version  # type: ignore[union-attr]
    updated = store.update_message(chat_id, message.id, content="更新后的回复内容")
    assert updated is not None
    assert updated.content == "更新后的回复内容"
    assert updated.metadata == {"m": 1}
    assert updated.updated_at >= message.created_at
    assert store.get_message(chat_id, message.id) == updated
    assert store.get_conversation(chat_id).version == version + 1  # type: ignore[union-attr]
    meta = store.update_message(chat_id, message.id, metadata={"edited": True})
    assert (
        meta is not None
        and meta.content == "更新后的回复内容"
        and meta.metadata == {"edited": True}
    )
    assert store.update_message(chat_id, "missing", content="x") is None
    assert store.update_message("missing", message.id, content="x") is None


def test_delete_message_relinks_the_branch(store: ConversationStore, chat_id: str) -> None:
    a, b, c = store.append_messages(
        chat_id,
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
    )
    assert store.delete_message(chat_id, b.id) is True
    remaining = store.get_messages(chat_id)
    assert [m.id for m in remaining] == [a.id, c.id]
    assert remaining[1].parent_id == a.id
    assert store.delete_message(chat_id, c.id) is True
    chat = store.get_conversation(chat_id)
    assert chat is not None and chat.head_message_id == a.id and chat.message_count == 1
    following = store.append_message(chat_id, "assistant", "d")
    assert following.parent_id == a.id and following.seq == 4
    assert store.delete_message(chat_id, "missing") is False
    assert store.delete_message(chat_id, b.id) is False
    assert store.check_integrity() == []


def test_delete_message_pair(store: ConversationStore, chat_id: str) -> None:
    m = store.append_messages(
        chat_id,
        [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "call tool"},
            {"role": "tool", "content": {"result": 1}},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"},
        ],
    )
    deleted = store.delete_message_pair(chat_id, m[1].id)
    assert [d.id for d in deleted] == [x.id for x in m[1:5]]
    remaining = store.get_messages(chat_id)
    assert [x.content for x in remaining] == ["s", "q2", "a2"]
    assert remaining[1].parent_id == m[0].id
    with pytest.raises(InvalidInputError, match="user message"):
        store.delete_message_pair(chat_id, m[6].id)
    assert len(store.get_messages(chat_id)) == 3
    assert store.delete_message_pair(chat_id, "missing") == []
    last = store.delete_message_pair(chat_id, m[5].id)
    assert [d.id for d in last] == [m[5].id, m[6].id]
    chat = store.get_conversation(chat_id)
    assert chat is not None and chat.head_message_id == m[0].id and chat.message_count == 1


def test_roles(store: ConversationStore, chat_id: str) -> None:
    for role in ("system", "user", "assistant", "tool"):
        assert store.append_message(chat_id, role, "x").role is Role(role)


def test_counts(store: ConversationStore, chat_id: str) -> None:
    other = store.create_conversation("o").id
    store.append_messages(chat_id, [{"role": "user", "content": "x"}] * 3)
    store.append_message(other, "user", "y")
    assert store.count_messages() == 4
    assert store.count_conversations() == 2
