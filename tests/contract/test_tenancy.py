"""A store opened for one user: they see and change only their own conversations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from convstore import (
    ConcurrencyError,
    ConversationNotFoundError,
    ConversationStore,
    InvalidInputError,
    MessageNotFoundError,
)


@pytest.fixture
def alice(store: ConversationStore) -> ConversationStore:
    return store.for_user("alice")


@pytest.fixture
def bob(store: ConversationStore) -> ConversationStore:
    return store.for_user("bob")


def test_a_users_conversations_are_theirs(
    store: ConversationStore, alice: ConversationStore, bob: ConversationStore
) -> None:
    mine = alice.create_conversation("alice's", initial_messages=[{"role": "user", "content": "x"}])
    theirs = bob.create_conversation("bob's")
    assert (mine.owner_id, theirs.owner_id) == ("alice", "bob")
    assert alice.user_id == "alice"
    assert [c.id for c in alice.list_conversations()] == [mine.id]
    assert alice.count_conversations() == 1
    assert alice.count_messages() == 1
    assert bob.count_messages() == 0
    assert alice.list_conversations(filters={"owner_id": "bob"}) == []
    assert {c.id for c in store.list_conversations()} == {mine.id, theirs.id}


def test_creating_for_someone_else_is_refused(alice: ConversationStore) -> None:
    with pytest.raises(InvalidInputError, match="owner_id"):
        alice.create_conversation("x", owner_id="bob")


CALLS: dict[str, Callable[[ConversationStore, str, str], Any]] = {
    "get_conversation": lambda s, c, m: s.get_conversation(c),
    "update_conversation": lambda s, c, m: s.update_conversation(c, name="taken"),
    "delete_conversation": lambda s, c, m: s.delete_conversation(c),
    "soft delete": lambda s, c, m: s.delete_conversation(c, soft=True),
    "get_messages": lambda s, c, m: s.get_messages(c),
    "get_message": lambda s, c, m: s.get_message(c, m),
    "append_message": lambda s, c, m: s.append_message(c, "user", "intrusion"),
    "update_message": lambda s, c, m: s.update_message(c, m, content="changed"),
    "delete_message": lambda s, c, m: s.delete_message(c, m),
    "delete_message_pair": lambda s, c, m: s.delete_message_pair(c, m),
    "export_conversation": lambda s, c, m: s.export_conversation(c),
    "set_state": lambda s, c, m: s.set_state(c, "archived"),
    "begin_stream": lambda s, c, m: s.begin_stream(c),
    "get_chunks": lambda s, c, m: s.get_chunks(c, m),
    "append_chunk": lambda s, c, m: s.append_chunk(c, m, "x"),
    "finalize_stream": lambda s, c, m: s.finalize_stream(c, m),
    "search in it": lambda s, c, m: s.search_messages("secret", conversation_id=c),
    "transaction": lambda s, c, m: s.transaction(c).__enter__(),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_another_users_conversation_behaves_as_missing(
    store: ConversationStore,
    alice: ConversationStore,
    bob: ConversationStore,
    call: Callable[[ConversationStore, str, str], Any],
) -> None:
    chat = alice.create_conversation("private")
    message = alice.append_message(chat.id, "user", "the secret plan")
    before = store.export_conversation(chat.id)
    try:
        result = call(bob, chat.id, message.id)
    except (ConversationNotFoundError, MessageNotFoundError):
        pass
    else:
        assert result in (None, False, [])
    assert store.export_conversation(chat.id) == before


def test_search_finds_only_the_users_messages(
    alice: ConversationStore, bob: ConversationStore
) -> None:
    a = alice.create_conversation("a", initial_messages=[{"role": "user", "content": "zebra one"}])
    bob.create_conversation("b", initial_messages=[{"role": "user", "content": "zebra two"}])
    assert [m.content for m in alice.search_messages("zebra")] == ["zebra one"]
    assert [c.id for c in alice.search_conversations("zebra")] == [a.id]
    assert [h.conversation_id for h in alice.search("zebra").hits] == [a.id]


def test_importing_for_another_user_is_refused(
    store: ConversationStore, alice: ConversationStore, bob: ConversationStore
) -> None:
    chat = alice.create_conversation("a", initial_messages=[{"role": "user", "content": "x"}])
    exported = store.export_conversation(chat.id)
    assert exported is not None
    with pytest.raises(InvalidInputError):
        bob.import_conversation(*exported, replace=True)
    assert store.export_conversation(chat.id) == exported


def test_closing_a_view_leaves_the_store_open(store: ConversationStore) -> None:
    store.for_user("alice").close()
    assert store.count_conversations() == 0


def test_a_user_id_must_be_an_id(store: ConversationStore) -> None:
    with pytest.raises(InvalidInputError):
        store.for_user("../etc")


def test_ids_chosen_in_a_view_are_scoped_to_its_user(
    store: ConversationStore, alice: ConversationStore, bob: ConversationStore
) -> None:
    mine = alice.create_conversation("a", conversation_id="chat-1")
    assert mine.id.startswith("chat-1-") and len(mine.id) == len("chat-1-") + 10
    with pytest.raises(ConcurrencyError, match="already exists"):
        alice.create_conversation("again", conversation_id="chat-1")
    with pytest.raises(ConcurrencyError, match="already exists"):
        alice.create_conversation("again", conversation_id=mine.id)  # the stored form
    theirs = bob.create_conversation("b", conversation_id="chat-1")
    assert theirs.id != mine.id
    assert store.create_conversation("global", conversation_id="chat-1").id == "chat-1"
    with pytest.raises(InvalidInputError, match="at most 53"):
        alice.create_conversation("long", conversation_id="x" * 54)


def test_trying_another_users_ids_reveals_nothing(
    alice: ConversationStore, bob: ConversationStore
) -> None:
    hers = alice.create_conversation("a", conversation_id="plans")
    said = alice.append_message(hers.id, "user", "secret", message_id="m1")
    mine = bob.create_conversation("b")
    for conversation_id in (hers.id, "plans", "free-id"):  # taken and free ids alike
        created = bob.create_conversation("probe", conversation_id=conversation_id)
        assert created.owner_id == "bob"
    for message_id in (said.id, "m1", "free-message"):
        probe = bob.append_message(mine.id, "user", "probe", message_id=message_id)
        assert probe.conversation_id == mine.id
    assert alice.get_message(hers.id, said.id) == said


def test_a_retry_with_a_chosen_message_id_returns_the_message(alice: ConversationStore) -> None:
    chat = alice.create_conversation("a")
    first = alice.append_message(chat.id, "user", "hi", message_id="m1")
    assert alice.append_message(chat.id, "user", "hi", message_id="m1") == first
    assert alice.append_message(chat.id, "user", "hi", message_id=first.id) == first
    assert alice.count_messages() == 1
