"""Typed state details: checked on every backend, stored with the state, filled by the
automatic transitions of a streamed reply."""

from __future__ import annotations

from typing import Any

import pytest

import convstore
from convstore import ConversationState, ConversationStore, InvalidInputError
from convstore.states import STATE_DETAILS


@pytest.fixture
def chat_id(store: ConversationStore) -> str:
    return store.create_conversation("chat").id


EXAMPLES: dict[str, dict[str, Any]] = {
    "awaiting_llm": {"request_id": "req_1"},
    "processing_tool": {"tool_id": "call_1", "tool_name": "search"},
    "processing_workflow": {"workflow_id": "wf_1"},
    "streaming_response": {"message_id": "m1", "sequence": 3},
    "error": {"error": "the model timed out", "code": "E_TIMEOUT"},
}


def test_the_states_with_details() -> None:
    assert {state.value for state in STATE_DETAILS} == set(EXAMPLES)


@pytest.mark.parametrize("state", sorted(EXAMPLES))
def test_details_are_returned_and_logged_with_the_state(
    store: ConversationStore, chat_id: str, state: str
) -> None:
    moved = store.set_state(chat_id, state, details=EXAMPLES[state])
    assert (moved.state, moved.state_details) == (state, EXAMPLES[state])
    change = store.changes_since(0)[-1]
    assert change.kind == "state.changed"
    assert change.payload["details"] == EXAMPLES[state]


@pytest.mark.parametrize("state", sorted(EXAMPLES))
def test_details_are_stored_and_cleared_by_the_next_state(
    store: ConversationStore, chat_id: str, state: str
) -> None:
    moved = store.set_state(chat_id, state, details=EXAMPLES[state])
    assert store.get_conversation(chat_id) == moved
    listed = store.list_conversations()
    assert [c.state_details for c in listed] == [EXAMPLES[state]]
    after = store.set_state(chat_id, "awaiting_user")
    assert after.state_details == {}
    assert store.get_conversation(chat_id) == after


def test_new_details_for_the_same_state_replace_the_old(
    store: ConversationStore, chat_id: str
) -> None:
    first = store.set_state(chat_id, "processing_tool", details={"tool_id": "a"})
    same = store.set_state(chat_id, "processing_tool", details={"tool_id": "a"})
    assert same.version == first.version  # nothing changed
    second = store.set_state(chat_id, "processing_tool", details={"tool_id": "b"})
    assert second.version == first.version + 1
    assert store.get_conversation(chat_id) == second
    assert second.state_details == {"tool_id": "b"}


@pytest.mark.parametrize(
    ("state", "details", "named"),
    [
        ("awaiting_llm", {"request": "r"}, "details.request"),
        ("awaiting_llm", {"request_id": 7}, "details.request_id"),
        ("processing_tool", {"tool_name": "t"}, "details.tool_id"),
        ("processing_workflow", {"workflow_id": ""}, "details.workflow_id"),
        ("streaming_response", {"message_id": "m", "sequence": "1"}, "details.sequence"),
        ("streaming_response", {"message_id": "m", "sequence": -1}, "details.sequence"),
        ("error", {"message": "x"}, "details.message"),
        ("error", {"error": "bad\x00byte"}, "details.error"),
        ("active", {"why": "x"}, "takes no details"),
        ("awaiting_llm", ["request_id"], "details must be a dict"),
    ],
)
def test_wrong_details_are_refused_and_change_nothing(
    store: ConversationStore, chat_id: str, state: str, details: object, named: str
) -> None:
    before = store.get_conversation(chat_id)
    with pytest.raises(InvalidInputError) as raised:
        store.set_state(chat_id, state, details=details)  # type: ignore[arg-type]
    assert named in raised.value.message
    assert store.get_conversation(chat_id) == before


def test_no_details_are_allowed_for_any_state(store: ConversationStore, chat_id: str) -> None:
    for state in ("awaiting_llm", "processing_tool", "active"):
        moved = store.set_state(chat_id, state, details={} if state == "active" else None)
        assert (moved.state, moved.state_details) == (state, {})


def test_a_streamed_reply_fills_and_clears_the_details(
    store: ConversationStore, chat_id: str
) -> None:
    begun = store.begin_stream(chat_id)
    streaming = store.get_conversation(chat_id)
    assert streaming is not None
    assert streaming.state == ConversationState.STREAMING_RESPONSE
    assert streaming.state_details == {"message_id": begun.id, "sequence": 0}
    store.append_chunk(chat_id, begun.id, "hi")
    store.finalize_stream(chat_id, begun.id)
    done = store.get_conversation(chat_id)
    assert done is not None
    assert (done.state, done.state_details) == (ConversationState.AWAITING_USER, {})
    failed = store.begin_stream(chat_id)
    store.abort_stream(chat_id, failed.id, reason="provider went away")
    after = store.get_conversation(chat_id)
    assert after is not None
    assert (after.state, after.state_details) == ("error", {"error": "provider went away"})


def test_settling_one_stream_leaves_the_state_of_another_going_on(
    store: ConversationStore, chat_id: str
) -> None:
    first = store.begin_stream(chat_id)
    second = store.begin_stream(chat_id)
    store.finalize_stream(chat_id, first.id)
    still = store.get_conversation(chat_id)
    assert still is not None
    assert still.state == ConversationState.STREAMING_RESPONSE
    assert still.state_details == {"message_id": second.id, "sequence": 0}
    store.abort_stream(chat_id, second.id)
    after = store.get_conversation(chat_id)
    assert after is not None
    assert (after.state, after.state_details) == ("error", {"error": "aborted"})


def test_details_survive_reopening_the_store(backend: str, store_url: str) -> None:
    if backend == "memory":
        pytest.skip("a memory store ends when it is closed")
    with convstore.open(store_url) as store:
        chat = store.create_conversation("c")
        store.set_state(chat.id, "awaiting_llm", details={"request_id": "r9"})
    with convstore.open(store_url) as reopened:
        found = reopened.get_conversation(chat.id)
    assert found is not None
    assert found.state_details == {"request_id": "r9"}
