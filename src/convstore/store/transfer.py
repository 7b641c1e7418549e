"""Whole conversations in and out, exactly as stored: for backups, archives and moving
a store to another backend."""

from __future__ import annotations

from collections.abc import Sequence

from convstore.errors import ConcurrencyError, InvalidInputError
from convstore.ids import check_id
from convstore.models import Conversation, Message
from convstore.record_checks import check_records
from convstore.retry import retried
from convstore.store.core import StoreCore, insert_tree


class Transfer(StoreCore):
    """The export and import methods of the store."""

    @retried
    def export_conversation(
        self, conversation_id: str
    ) -> tuple[Conversation, list[Message]] | None:
        """The conversation and every message it holds (any branch, by seq), read in
        one snapshot; None if it does not exist."""
        check_id(conversation_id, "conversation_id")
        with self._unit(write=False) as session:
            conversation = self._find(session, conversation_id)
            if conversation is None:
                return None
            return conversation, session.get_all_messages(conversation_id)

    @retried
    def import_conversation(
        self, conversation: Conversation, messages: Sequence[Message], *, replace: bool = False
    ) -> None:
        """Store a conversation exactly as given (ids, seq, times and version kept).

        With ``replace``, an existing conversation of that id is replaced as a whole;
        otherwise it is a ConcurrencyError. The records must be consistent: messages of
        that conversation, seq unique and within last_seq, parents among them, counters
        matching.
        """
        check_records(conversation, messages)
        check_import(conversation, messages)
        if not self._sees(conversation):
            raise InvalidInputError(f"owner_id must be {self._owner!r}, the store's user")
        with self._unit(write=True) as session:
            for message in messages:  # message ids are unique across the store
                holder = session.find_message(message.id)
                if holder is not None and holder.conversation_id != conversation.id:
                    where = "another conversation"  # a user's view is not told which
                    if self._owner is None:
                        where = f"conversation {holder.conversation_id!r}"
                    raise ConcurrencyError(f"message id {message.id!r} is already used in {where}")
            if session.get_stamp(conversation.id) is not None:
                if not replace or self._find(session, conversation.id) is None:
                    raise ConcurrencyError(f"conversation {conversation.id!r} already exists")
                session.delete_conversation(conversation.id)
            session.insert_conversation(conversation)
            insert_tree(session, conversation, list(messages))
            self._log_change(session, conversation, "conversation.imported", {})
        self._branches.invalidate(conversation.id)


def check_import(conversation: Conversation, messages: Sequence[Message]) -> None:
    """Refuse records that would break the store's invariants if stored as they are."""
    check_id(conversation.id, "conversation_id")
    where = f"conversation {conversation.id!r}"
    ids = {m.id for m in messages}
    seqs = [m.seq for m in messages]
    problems = []
    if len(ids) != len(messages):
        problems.append("message ids repeat")
    if len(set(seqs)) != len(seqs) or any(s < 1 or s > conversation.last_seq for s in seqs):
        problems.append(f"seq values must be unique and within 1..{conversation.last_seq}")
    if any(m.conversation_id != conversation.id for m in messages):
        problems.append("some messages belong to another conversation")
    if any(m.parent_id is not None and m.parent_id not in ids for m in messages):
        problems.append("some messages have a parent that is not among them")
    if conversation.message_count != len(messages):
        problems.append(f"message_count is {conversation.message_count}, not {len(messages)}")
    if conversation.head_message_id is not None and conversation.head_message_id not in ids:
        problems.append("head_message_id is not among the messages")
    for message in messages:
        check_id(message.id, "message_id")
    if problems:
        raise InvalidInputError(f"cannot import {where}: {'; '.join(problems)}")
