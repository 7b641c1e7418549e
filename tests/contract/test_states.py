"""The conversation state machine, checked by the store on every backend."""

from __future__ import annotations

import pytest

from convstore import (
    ConcurrencyError,
    ConversationNotFoundError,
    ConversationState,
    ConversationStore,
    InvalidInputError,
    InvalidStateError,
)
from convstore.states import TRANSITIONS


def test_the_transitions_name_only_states() -> None:
    assert set(TRANSITIONS) == set(ConversationState)
    for state, targets in TRANSITIONS.items():
        assert targets <= set(ConversationState)
        assert targets, f"{state} leads nowhere"


def test_a_conversation_starts_initial_and_its_first_message_activates_it(
    store: ConversationStore,
) -> None:
    chat = store.create_conversation("c")
    assert chat.state == ConversationState.INITIAL
    store.append_message(chat.id, "user", "hi")
    after = store.get_conversation(chat.id)
    assert after is not None
    assert (after.state, after.version) == (ConversationState.ACTIVE, 2)
    seeded = store.create_conversation("s", initial_messages=[{"role": "user", "content": "x"}])
    assert seeded.state == ConversationState.ACTIVE


def test_legal_transitions_move_the_state_and_bump_the_version(store: ConversationStore) -> None:
    chat = store.create_conversation("c")
    path = ["active", "awaiting_llm", "processing_tool", "awaiting_llm", "awaiting_user"]
    for state in path:
        moved = store.set_state(chat.id, state)
        assert moved.state == state
        assert store.get_conversation(chat.id) == moved
    assert moved.version == 1 + len(path)
    assert store.set_state(chat.id, "awaiting_user").version == moved.version  # staying put


def test_an_illegal_transition_is_refused_and_changes_nothing(store: ConversationStore) -> None:
    chat = store.create_conversation("c")
    store.set_state(chat.id, "archived")
    before = store.get_conversation(chat.id)
    with pytest.raises(InvalidStateError, match="archived") as raised:
        store.set_state(chat.id, "streaming_response")
    assert raised.value.http_status == 409
    assert store.get_conversation(chat.id) == before
    for write in (
        lambda: store.append_message(chat.id, "user", "x"),
        lambda: store.append_messages(chat.id, [{"role": "user", "content": "x"}]),
    ):
        with pytest.raises(InvalidStateError):
            write()
    assert store.get_conversation(chat.id) == before
    assert store.set_state(chat.id, "active").state == ConversationState.ACTIVE


def test_archived_messages_cannot_be_edited_or_deleted(store: ConversationStore) -> None:
    chat = store.create_conversation("c")
    message = store.append_message(chat.id, "user", "keep me")
    store.set_state(chat.id, "archived")
    with pytest.raises(InvalidStateError):
        store.update_message(chat.id, message.id, content="changed")
    with pytest.raises(InvalidStateError):
        store.delete_message(chat.id, message.id)
    with pytest.raises(InvalidStateError):
        store.delete_message_pair(chat.id, message.id)
    assert store.get_messages(chat.id) == [message]


def test_expected_version_guards_a_transition(store: ConversationStore) -> None:
    chat = store.create_conversation("c")
    with pytest.raises(ConcurrencyError):
        store.set_state(chat.id, "active", expected_version=chat.version + 1)
    assert store.set_state(chat.id, "active", expected_version=chat.version).version == 2


@pytest.mark.parametrize("state", ["", "ACTIVE", "nonsense", 3, None])
def test_unknown_states_are_invalid_input(store: ConversationStore, state: object) -> None:
    chat = store.create_conversation("c")
    with pytest.raises(InvalidInputError, match="state must be one of"):
        store.set_state(chat.id, state)  # type: ignore[arg-type]
    assert store.get_conversation(chat.id) == chat


def test_a_missing_conversation_has_no_state(store: ConversationStore) -> None:
    with pytest.raises(ConversationNotFoundError):
        store.set_state("missing", "active")
