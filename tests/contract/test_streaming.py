"""Streamed replies: begin, chunks, finalize or abort, and recovery after a crash."""

from __future__ import annotations

import pytest

from convstore import (
    ConcurrencyError,
    ConversationState,
    ConversationStore,
    InvalidInputError,
    InvalidStateError,
    MessageNotFoundError,
    MessageStatus,
)


@pytest.fixture
def chat_id(store: ConversationStore) -> str:
    chat = store.create_conversation("chat").id
    store.append_message(chat, "user", "tell me a story")
    return chat


def test_a_reply_streams_and_is_finalized(store: ConversationStore, chat_id: str) -> None:
    message = store.begin_stream(chat_id, metadata={"model": "m1"})
    assert (message.status, message.content, message.seq) == (MessageStatus.STREAMING, "", 2)
    assert store.get_conversation(chat_id).state == ConversationState.STREAMING_RESPONSE  # type: ignore[union-attr]

    first = store.append_chunks(chat_id, message.id, ["Once ", "upon "])
    third = store.append_chunk(chat_id, message.id, "a time")
    assert [(c.seq, c.delta) for c in [*first, third]] == [
        (1, "Once "),
        (2, "upon "),
        (3, "a time"),
    ]
    assert [c.delta for c in store.get_chunks(chat_id, message.id, after=1)] == ["upon ", "a time"]
    assert store.get_chunks(chat_id, message.id, after=1, limit=1)[0].seq == 2

    done = store.finalize_stream(
        chat_id,
        message.id,
        finish_reason="stop",
        usage={"prompt_tokens": 4, "completion_tokens": 3},
    )
    assert (done.status, done.content) == (MessageStatus.COMPLETE, "Once upon a time")
    assert done.metadata == {"model": "m1", "finish_reason": "stop"}
    assert store.get_message(chat_id, message.id) == done
    chat = store.get_conversation(chat_id)
    assert chat is not None
    assert chat.state == ConversationState.AWAITING_USER
    assert (chat.prompt_tokens, chat.completion_tokens, chat.head_message_id) == (4, 3, done.id)
    assert store.finalize_stream(chat_id, message.id) == done  # a repeated call changes nothing
    assert len(store.get_chunks(chat_id, message.id)) == 3  # chunks stay for late readers


def test_resent_chunks_are_stored_once(store: ConversationStore, chat_id: str) -> None:
    message = store.begin_stream(chat_id)
    store.append_chunks(chat_id, message.id, ["a", "b"], first_seq=1)
    again = store.append_chunks(chat_id, message.id, ["a", "b", "c"], first_seq=1)
    assert [c.delta for c in again] == ["a", "b", "c"]
    store.append_chunk(chat_id, message.id, "b", seq=2)
    assert [c.delta for c in store.get_chunks(chat_id, message.id)] == ["a", "b", "c"]


def test_a_chunk_number_reused_for_other_text_is_refused(
    store: ConversationStore, chat_id: str
) -> None:
    message = store.begin_stream(chat_id)
    store.append_chunks(chat_id, message.id, ["a", "b"])
    with pytest.raises(ConcurrencyError):
        store.append_chunks(chat_id, message.id, ["a", "X", "c"], first_seq=1)
    assert [c.delta for c in store.get_chunks(chat_id, message.id)] == ["a", "b"]


def test_a_gap_in_chunk_numbers_is_refused(store: ConversationStore, chat_id: str) -> None:
    message = store.begin_stream(chat_id)
    store.append_chunk(chat_id, message.id, "a")
    with pytest.raises(InvalidInputError, match="gap"):
        store.append_chunk(chat_id, message.id, "c", seq=3)
    assert len(store.get_chunks(chat_id, message.id)) == 1


@pytest.mark.parametrize(
    ("deltas", "first_seq"),
    [("text", None), ([], None), ([1], None), (["a\x00"], None), (["a"], 0), (["a"], -1)],
)
def test_bad_chunks_are_refused_and_change_nothing(
    store: ConversationStore, chat_id: str, deltas: object, first_seq: int | None
) -> None:
    message = store.begin_stream(chat_id)
    with pytest.raises(InvalidInputError):
        store.append_chunks(chat_id, message.id, deltas, first_seq=first_seq)  # type: ignore[arg-type]
    assert store.get_chunks(chat_id, message.id) == []


def test_chunks_only_go_to_streaming_messages(store: ConversationStore, chat_id: str) -> None:
    plain = store.append_message(chat_id, "assistant", "done already")
    with pytest.raises(InvalidStateError):
        store.append_chunk(chat_id, plain.id, "more")
    with pytest.raises(MessageNotFoundError):
        store.append_chunk(chat_id, "nosuchmessage", "more")
    message = store.begin_stream(chat_id)
    store.finalize_stream(chat_id, message.id)
    with pytest.raises(InvalidStateError):
        store.append_chunk(chat_id, message.id, "late")
    with pytest.raises(InvalidStateError):
        store.abort_stream(chat_id, message.id)


def test_an_aborted_reply_keeps_what_arrived(store: ConversationStore, chat_id: str) -> None:
    message = store.begin_stream(chat_id)
    store.append_chunks(chat_id, message.id, ["half ", "a"])
    aborted = store.abort_stream(chat_id, message.id, reason="model timed out")
    assert (aborted.status, aborted.content) == (MessageStatus.ERROR, "half a")
    assert aborted.metadata["error"] == "model timed out"
    assert store.get_conversation(chat_id).state == ConversationState.ERROR  # type: ignore[union-attr]
    assert store.abort_stream(chat_id, message.id) == aborted


def test_beginning_again_with_the_same_id_is_a_retry(
    store: ConversationStore, chat_id: str
) -> None:
    first = store.begin_stream(chat_id, message_id="reply-1")
    again = store.begin_stream(chat_id, message_id="reply-1")
    assert again == first
    assert store.get_conversation(chat_id).message_count == 2  # type: ignore[union-attr]


def test_unfinished_streams_are_marked_error_with_their_chunks_kept(
    store: ConversationStore, chat_id: str
) -> None:
    left = store.begin_stream(chat_id)
    store.append_chunks(chat_id, left.id, ["partial ", "answer"])
    other = store.create_conversation("other").id
    fresh = store.begin_stream(other)
    assert store.fail_unfinished_streams(idle_for=3600) == []
    failed = store.fail_unfinished_streams()
    assert sorted(m.id for m in failed) == sorted([left.id, fresh.id])
    recovered = store.get_message(chat_id, left.id)
    assert recovered is not None
    assert (recovered.status, recovered.content) == (MessageStatus.ERROR, "partial answer")
    assert [c.delta for c in store.get_chunks(chat_id, left.id)] == ["partial ", "answer"]
    assert store.fail_unfinished_streams() == []
    with pytest.raises(InvalidInputError):
        store.fail_unfinished_streams(idle_for=-1)


def test_deleting_a_streamed_message_deletes_its_chunks(
    store: ConversationStore, chat_id: str
) -> None:
    message = store.begin_stream(chat_id)
    store.append_chunks(chat_id, message.id, ["a", "b"])
    assert store.delete_message(chat_id, message.id)
    with pytest.raises(MessageNotFoundError):
        store.get_chunks(chat_id, message.id)


def test_an_archived_conversation_takes_no_stream(store: ConversationStore, chat_id: str) -> None:
    store.set_state(chat_id, "archived")
    with pytest.raises(InvalidStateError):
        store.begin_stream(chat_id)
    assert store.get_conversation(chat_id).message_count == 1  # type: ignore[union-attr]
