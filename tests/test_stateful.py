"""Random sequences of operations, applied to the store and to a plain in-memory model.

After every step the store must agree with the model: the same conversations, the same
messages in the same order with the same content, seqs strictly increasing, parent links
forming one chain, and counters that match.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

import convstore
from convstore import ConversationState, InvalidInputError, InvalidStateError
from convstore.states import TRANSITIONS
from convstore.validation import MAX_INT, MIN_INT
from tests.conftest import ENGINES, backend_url

text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(MIN_INT, MAX_INT)  # what every backend stores
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
contents = text | st.lists(json_values, max_size=3) | st.dictionaries(text, json_values, max_size=3)
metadata = st.dictionaries(text, json_values, max_size=2)
roles = st.sampled_from(["system", "user", "assistant", "tool"])
# archived is left out: it would only make every later write in the run a refusal
states = st.sampled_from([s for s in ConversationState if s is not ConversationState.ARCHIVED])


@dataclass
class ModelMessage:
    id: str
    role: str
    content: Any
    metadata: dict[str, Any]


@dataclass
class ModelConversation:
    name: str
    metadata: dict[str, Any]
    messages: list[ModelMessage] = field(default_factory=list)
    state: ConversationState = ConversationState.INITIAL

    def spoke(self) -> None:
        if self.state is ConversationState.INITIAL:
            self.state = ConversationState.ACTIVE


class StoreVersusModel(RuleBasedStateMachine):
    url_for_backend: str = "memory"
    conversations = Bundle("conversations")

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="convstore-stateful-"))
        self.store = convstore.open(backend_url(self.url_for_backend, self.directory))
        self.model: dict[str, ModelConversation] = {}

    def teardown(self) -> None:
        assert self.store.check_integrity() == []
        self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(target=conversations, name=text, meta=metadata)
    def create(self, name: str, meta: dict[str, Any]) -> str:
        chat = self.store.create_conversation(name, metadata=meta)
        self.model[chat.id] = ModelConversation(name, meta)
        return chat.id

    @rule(chat=conversations, role=roles, content=contents, meta=metadata)
    def append(self, chat: str, role: str, content: Any, meta: dict[str, Any]) -> None:
        if chat not in self.model:
            with pytest.raises(convstore.ConversationNotFoundError):
                self.store.append_message(chat, role, content, metadata=meta)
            return
        message = self.store.append_message(chat, role, content, metadata=meta)
        self.model[chat].messages.append(ModelMessage(message.id, role, content, meta))
        self.model[chat].spoke()

    @rule(chat=conversations, batch=st.lists(st.tuples(roles, contents), min_size=1, max_size=4))
    def append_batch(self, chat: str, batch: list[tuple[str, Any]]) -> None:
        if chat not in self.model:
            return
        appended = self.store.append_messages(chat, [{"role": r, "content": c} for r, c in batch])
        for message, (role, content) in zip(appended, batch, strict=True):
            self.model[chat].messages.append(ModelMessage(message.id, role, content, {}))
        self.model[chat].spoke()

    @rule(chat=conversations, pieces=st.lists(text, min_size=1, max_size=4), finish=st.booleans())
    def stream_reply(self, chat: str, pieces: list[str], finish: bool) -> None:
        conversation = self.model.get(chat)
        if conversation is None:
            return
        reply = self.store.begin_stream(chat)
        assert self.store.get_conversation(chat).state == "streaming_response"  # type: ignore[union-attr]
        self.store.append_chunks(chat, reply.id, pieces)
        self.store.append_chunks(chat, reply.id, pieces[:1], first_seq=1)  # a resend
        if finish:
            self.store.finalize_stream(chat, reply.id)
            note, conversation.state = {"finish_reason": "stop"}, ConversationState.AWAITING_USER
        else:
            self.store.abort_stream(chat, reply.id)
            note, conversation.state = {"error": "aborted"}, ConversationState.ERROR
        conversation.messages.append(ModelMessage(reply.id, "assistant", "".join(pieces), note))

    @rule(chat=conversations, state=states)
    def move(self, chat: str, state: ConversationState) -> None:
        conversation = self.model.get(chat)
        if conversation is None:
            return
        if state is conversation.state or state in TRANSITIONS[conversation.state]:
            assert self.store.set_state(chat, state).state == state
            conversation.state = state
        else:
            with pytest.raises(InvalidStateError):
                self.store.set_state(chat, state)

    @rule(chat=conversations)
    def soft_delete_and_restore(self, chat: str) -> None:
        if chat not in self.model:
            return
        exported = self.store.export_conversation(chat)
        assert exported is not None
        assert self.store.delete_conversation(chat, soft=True)
        assert self.store.get_conversation(chat) is None
        assert self.store.restore_conversation(chat) == exported[0]

    @rule(chat=conversations, content=contents)
    def retry_last_append(self, chat: str, content: Any) -> None:
        conversation = self.model.get(chat)
        if conversation is None or not conversation.messages:
            return
        last = conversation.messages[-1]
        again = self.store.append_message(chat, last.role, last.content, message_id=last.id)
        assert again.id == last.id

    @rule(chat=conversations, index=st.integers(0, 50), content=contents)
    def edit(self, chat: str, index: int, content: Any) -> None:
        conversation = self.model.get(chat)
        if conversation is None or not conversation.messages:
            return
        target = conversation.messages[index % len(conversation.messages)]
        assert self.store.update_message(chat, target.id, content=content) is not None
        target.content = content

    @rule(chat=conversations, index=st.integers(0, 50))
    def delete_one(self, chat: str, index: int) -> None:
        conversation = self.model.get(chat)
        if conversation is None or not conversation.messages:
            return
        target = conversation.messages.pop(index % len(conversation.messages))
        assert self.store.delete_message(chat, target.id) is True

    @rule(chat=conversations, index=st.integers(0, 50))
    def delete_pair(self, chat: str, index: int) -> None:
        conversation = self.model.get(chat)
        if conversation is None or not conversation.messages:
            return
        position = index % len(conversation.messages)
        target = conversation.messages[position]
        if target.role != "user":
            with pytest.raises(InvalidInputError):
                self.store.delete_message_pair(chat, target.id)
            return
        end = position + 1
        while end < len(conversation.messages) and conversation.messages[end].role != "user":
            end += 1
        deleted = self.store.delete_message_pair(chat, target.id)
        assert [m.id for m in deleted] == [m.id for m in conversation.messages[position:end]]
        del conversation.messages[position:end]

    @rule(chat=conversations, name=text)
    def rename(self, chat: str, name: str) -> None:
        updated = self.store.update_conversation(chat, name=name)
        if chat in self.model:
            assert updated is not None
            self.model[chat].name = name
        else:
            assert updated is None

    @rule(chat=consumes(conversations))
    def delete_conversation(self, chat: str) -> None:
        assert self.store.delete_conversation(chat) is (chat in self.model)
        self.model.pop(chat, None)

    @precondition(lambda self: bool(self.model))
    @invariant()
    def store_matches_model(self) -> None:
        assert {c.id for c in self.store.list_conversations()} == set(self.model)
        assert self.store.count_messages() == sum(len(c.messages) for c in self.model.values())
        for chat, expected in self.model.items():
            conversation = self.store.get_conversation(chat)
            assert conversation is not None
            assert (conversation.name, conversation.metadata) == (expected.name, expected.metadata)
            assert conversation.state == expected.state
            messages = self.store.get_messages(chat)
            assert [(m.id, m.role.value, m.content, m.metadata) for m in messages] == [
                (m.id, m.role, m.content, m.metadata) for m in expected.messages
            ]
            seqs = [m.seq for m in messages]
            assert seqs == sorted(set(seqs))
            assert all(m.seq <= conversation.last_seq for m in messages)
            assert [m.parent_id for m in messages] == [None, *(m.id for m in messages)][
                : len(messages)
            ]
            assert conversation.message_count == len(messages)
            assert conversation.head_message_id == (messages[-1].id if messages else None)


def _machine_for(backend: str) -> type[StoreVersusModel]:
    return type(f"StoreVersusModel_{backend}", (StoreVersusModel,), {"url_for_backend": backend})


@pytest.mark.parametrize("backend_name", ENGINES)
def test_store_behaves_like_the_model(backend_name: str) -> None:
    machine = _machine_for(backend_name)
    machine.TestCase.settings = settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
