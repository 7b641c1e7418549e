"""How messages are added to and taken from a conversation's tree.

Shared by every concern that writes messages (creating a conversation with its first
messages, appending, streaming, deleting): seq numbers, parents, counters and token
totals are decided here, and the vectors of new content are made and stored here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from convstore.backends.base import Session
from convstore.errors import ConversationNotFoundError
from convstore.ids import check_id, new_id
from convstore.models import Conversation, Message, Role
from convstore.queries import BranchPage
from convstore.search.embedding import as_vectors
from convstore.search.semantic import to_bytes
from convstore.states import ConversationState
from convstore.store.core import StoreCore, check_writable
from convstore.store.drafts import Draft, check_retry
from convstore.validation import text_values, token_totals

_PAIR_SCAN = 64  # messages read at a time when looking for the replies to a message


class MessageWriter(StoreCore):
    """Appending and removing messages, beneath every call that does either."""

    def _append_drafts(self, conversation_id: str, drafts: list[Draft]) -> list[Message]:
        """Append checked messages to a conversation in a unit of their own."""
        check_id(conversation_id, "conversation_id")
        vectors = self._embed_contents([d.new.content for d in drafts])
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            if conversation is None:
                raise ConversationNotFoundError(conversation_id)
            check_writable(conversation)
            _, appended = self._append(session, conversation, drafts)
            self._store_vectors(session, appended, vectors)
        self._branches.invalidate(conversation_id)
        return appended

    def _append(
        self, session: Session, conversation: Conversation, drafts: list[Draft]
    ) -> tuple[Conversation, list[Message]]:
        """Insert the drafts after the head; retried ids return what is stored."""
        result: list[Message] = []
        fresh: list[Message] = []
        texts: list[str] = []  # the JSON text of each fresh message's content
        seen: dict[str, Message] = {}
        seq, parent, now = conversation.last_seq, conversation.head_message_id, time.time()
        for draft in drafts:
            new = draft.new
            chosen = self._own_id(new.id)
            if chosen is not None:
                earlier = seen.get(chosen) or session.find_message(chosen)
                if earlier is not None:
                    check_retry(earlier, draft, conversation.id)
                    result.append(earlier)
                    continue
            seq += 1
            message = Message.from_stored(  # every field was checked by make_draft
                {
                    "id": chosen or new_id(),
                    "conversation_id": conversation.id,
                    "parent_id": parent,
                    "seq": seq,
                    "role": draft.role,
                    "type": new.type,
                    "content": new.content,
                    "status": draft.status,
                    "sender_id": new.sender_id,
                    "created_at": now,
                    "updated_at": now,
                    "metadata": new.metadata,
                    "usage": draft.usage,
                }
            )
            parent = message.id
            seen[message.id] = message
            fresh.append(message)
            texts.append(draft.content_json)
            result.append(message)
        if not fresh:
            return conversation, result
        totals = token_totals(conversation, [m.usage for m in fresh if m.usage is not None])
        session.insert_messages(fresh, texts)
        changes: dict[str, Any] = {
            "last_seq": seq,
            "head_message_id": parent,
            "message_count": conversation.message_count + len(fresh),
            **totals,
        }
        if conversation.state == ConversationState.INITIAL:  # the first words make it active
            changes["state"] = ConversationState.ACTIVE.value
            activated = {"from": "initial", "to": "active"}
            self._log_change(session, conversation, "state.changed", activated)
        updated = self._touch(
            session,
            conversation,
            changes,
            "messages.appended",
            {"message_ids": [m.id for m in fresh], "first_seq": fresh[0].seq, "last_seq": seq},
            now=now,
        )
        return updated, result

    def _replies(self, session: Session, message: Message) -> list[Message]:
        """The non-user messages that continue ``message``'s branch, up to the next user one."""
        replies: list[Message] = []
        parent, after = message.id, message.seq
        while True:
            page = session.get_branch(
                message.conversation_id, BranchPage(limit=_PAIR_SCAN, after_seq=after)
            )
            for follower in page:
                if follower.parent_id != parent or follower.role is Role.USER:
                    return replies
                replies.append(follower)
                parent, after = follower.id, follower.seq
            if len(page) < _PAIR_SCAN:
                return replies

    def _remove(self, session: Session, conversation: Conversation, doomed: list[Message]) -> None:
        """Delete messages, hand their children to the nearest surviving ancestor."""
        parent_of = {m.id: m.parent_id for m in doomed}

        def survivor(message_id: str | None) -> str | None:
            while message_id in parent_of:
                message_id = parent_of[message_id]
            return message_id

        for message in doomed:
            session.reparent_messages(conversation.id, message.id, survivor(message.parent_id))
        session.delete_messages(conversation.id, list(parent_of))
        usage = [m.usage for m in doomed if m.usage is not None]
        self._touch(
            session,
            conversation,
            {
                "head_message_id": survivor(conversation.head_message_id),
                "message_count": conversation.message_count - len(doomed),
                "prompt_tokens": conversation.prompt_tokens - sum(u.prompt_tokens for u in usage),
                "completion_tokens": conversation.completion_tokens
                - sum(u.completion_tokens for u in usage),
            },
            "messages.deleted",
            {"message_ids": list(parent_of)},
        )

    # vectors of new content -----------------------------------------------------------

    def _embed_contents(self, contents: Sequence[Any]) -> list[bytes] | None:
        """Vectors for message contents about to be written, if the store makes them."""
        embedder = self.config.embedder
        if embedder is None or not self.config.embed_on_append or not contents:
            return None
        return [to_bytes(v) for v in as_vectors(embedder, [text_of(c) for c in contents])]

    def _store_vectors(
        self, session: Session, messages: Sequence[Message], vectors: list[bytes] | None
    ) -> None:
        """Store the vectors made by :meth:`_embed_contents` for the written messages."""
        if vectors is not None and self.config.embedder is not None:
            by_id = {m.id: v for m, v in zip(messages, vectors, strict=True)}
            session.put_embeddings(self.config.embedder.name, by_id)


def text_of(content: Any) -> str:
    """The text a message's vector describes: the strings inside its content."""
    return "\n".join(text_values(content))
