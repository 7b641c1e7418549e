"""Conversations: create, read, list, change, delete (softly or for good) and restore."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from convstore.backends.base import Session
from convstore.errors import ConcurrencyError, ConversationNotFoundError, InvalidInputError
from convstore.ids import check_id, new_id
from convstore.models import Conversation, NewMessage
from convstore.queries import (
    ConversationOrder,
    ConversationQuery,
    check_page,
    parse_conversation_filter,
)
from convstore.retry import retried
from convstore.states import ConversationState
from convstore.store.core import insert_tree
from convstore.store.drafts import make_drafts
from convstore.store.records import TRASH, expired, from_trash_form, trash_form
from convstore.store.writing import MessageWriter
from convstore.validation import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    check_metadata,
    check_text,
)

_ORDERS = ("updated_at", "created_at", "name")


class Conversations(MessageWriter):
    """The conversation methods of the store."""

    @retried
    def create_conversation(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        owner_id: str | None = None,
        conversation_id: str | None = None,
        initial_messages: Iterable[NewMessage | Mapping[str, Any]] | None = None,
    ) -> Conversation:
        """Create a conversation (with its first messages, if given) and return it."""
        name = check_text(name, "name", MAX_NAME_LENGTH)
        description = check_text(description, "description", MAX_DESCRIPTION_LENGTH, optional=True)
        metadata = check_metadata(metadata)
        if owner_id is not None:
            check_id(owner_id, "owner_id")
        if self._owner is not None and owner_id not in (None, self._owner):
            raise InvalidInputError(f"owner_id must be {self._owner!r}, the store's user")
        if conversation_id is not None:
            conversation_id = self._own_id(check_id(conversation_id, "conversation_id"))
        drafts = make_drafts(initial_messages or [], self.config.max_message_size)
        vectors = self._embed_contents([d.new.content for d in drafts])
        now = time.time()
        conversation = Conversation(
            id=conversation_id or new_id(),
            name=name,
            description=description,
            owner_id=owner_id or self._owner,
            state=ConversationState.INITIAL,
            created_at=now,
            updated_at=now,
            metadata=metadata,
            version=1,
        )
        with self._unit(write=True) as session:
            if conversation_id is not None and _taken(session, conversation_id):
                raise ConcurrencyError(f"conversation {conversation_id!r} already exists")
            session.insert_conversation(conversation)
            self._log_change(session, conversation, "conversation.created", {})
            if drafts:
                conversation, appended = self._append(session, conversation, drafts)
                self._store_vectors(session, appended, vectors)
        return conversation

    @retried
    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None if it does not exist."""
        check_id(conversation_id, "conversation_id")
        with self._unit(write=False) as session:
            return self._find(session, conversation_id)

    @retried
    def list_conversations(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        filters: Mapping[str, Any] | None = None,
        order_by: ConversationOrder = "updated_at",
        descending: bool = True,
    ) -> list[Conversation]:
        """Conversations matching ``filters``, most recently updated first by default.

        Filters: owner_id, conversation_ids, created_after, created_before,
        updated_after, updated_before (epoch seconds) and metadata ({"a.b": value}).
        """
        limit, offset = check_page(limit, offset)
        if order_by not in _ORDERS:
            raise InvalidInputError(
                f"order_by must be one of {', '.join(_ORDERS)}; got {order_by!r}"
            )
        query = ConversationQuery(
            where=self._scoped(parse_conversation_filter(filters)),
            order_by=order_by,
            descending=bool(descending),
            limit=limit,
            offset=offset,
        )
        with self._unit(write=False) as session:
            return session.list_conversations(query)

    @retried
    def update_conversation(
        self,
        conversation_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Conversation | None:
        """Change the given fields (None leaves a field as it is); None if missing.

        ``metadata`` replaces the stored metadata as a whole.
        """
        check_id(conversation_id, "conversation_id")
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = check_text(name, "name", MAX_NAME_LENGTH)
        if description is not None:
            changes["description"] = check_text(description, "description", MAX_DESCRIPTION_LENGTH)
        if metadata is not None:
            changes["metadata"] = check_metadata(metadata)
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            if conversation is None or not changes:
                return conversation
            return self._touch(session, conversation, changes, "conversation.updated", {})

    @retried
    def delete_conversation(self, conversation_id: str, *, soft: bool = False) -> bool:
        """Delete the conversation, its messages and every row derived from them.

        With ``soft``, a copy is kept aside for ``config.trash_retention`` seconds, from
        which :meth:`restore_conversation` brings it back. Returns False if there was no
        such conversation.
        """
        check_id(conversation_id, "conversation_id")
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            if conversation is None:
                return False
            if soft:
                kept = trash_form(conversation, session.get_all_messages(conversation_id))
                expires = time.time() + self.config.trash_retention
                session.delete_record(TRASH, conversation_id)  # an older copy
                session.insert_record(TRASH, conversation_id, kept, expires)
            session.delete_conversation(conversation_id)
            self._log_change(session, conversation, "conversation.deleted", {"soft": soft})
        self._branches.invalidate(conversation_id)
        return True

    @retried
    def restore_conversation(self, conversation_id: str) -> Conversation:
        """Bring back a conversation deleted with ``soft=True`` (within the retention
        time), as it was. ConversationNotFoundError if there is nothing to restore."""
        check_id(conversation_id, "conversation_id")
        with self._unit(write=True) as session:
            kept = session.get_record(TRASH, conversation_id)
            if kept is None or expired(kept[1]):
                raise ConversationNotFoundError(conversation_id)
            conversation, messages = from_trash_form(kept[0])
            if not self._sees(conversation):
                raise ConversationNotFoundError(conversation_id)
            if session.get_stamp(conversation_id) is not None:
                raise ConcurrencyError(f"conversation {conversation_id!r} exists again")
            if any(session.find_message(m.id) is not None for m in messages):
                raise ConcurrencyError(
                    f"conversation {conversation_id!r} cannot come back: "
                    "some of its message ids are used again"
                )
            session.insert_conversation(conversation)
            insert_tree(session, conversation, list(messages))
            session.delete_record(TRASH, conversation_id)
            self._log_change(session, conversation, "conversation.restored", {})
        self._branches.invalidate(conversation_id)
        return conversation

    @retried
    def count_conversations(self, filters: Mapping[str, Any] | None = None) -> int:
        """How many conversations match ``filters`` (all of them by default)."""
        where = self._scoped(parse_conversation_filter(filters))
        with self._unit(write=False) as session:
            return session.count_conversations(where)

    @retried
    def count_messages(self) -> int:
        """How many messages the store (or, in a user's view, the user) holds."""
        with self._unit(write=False) as session:
            if self._owner is None:
                return session.count_messages()
            mine = session.list_conversations(ConversationQuery(where=self._scoped(None)))
            return sum(c.message_count for c in mine)


def _taken(session: Session, conversation_id: str) -> bool:
    """Whether the id belongs to a conversation, or to one in the trash (which keeps its
    id until it is restored or expires, so no one else can take it meanwhile)."""
    if session.get_stamp(conversation_id) is not None:
        return True
    kept = session.get_record(TRASH, conversation_id)
    return kept is not None and not expired(kept[1])
