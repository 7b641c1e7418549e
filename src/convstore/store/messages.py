"""Messages: append, read the active branch (through the branch cache), edit, delete."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from convstore.content_types import check_content
from convstore.errors import ConversationNotFoundError, InvalidInputError
from convstore.ids import check_id
from convstore.models import Message, NewMessage, Role, Usage
from convstore.queries import BranchPage, check_page, check_seq, page_of
from convstore.retry import retried
from convstore.store.core import check_writable, owned
from convstore.store.drafts import make_draft, make_drafts
from convstore.store.writing import MessageWriter
from convstore.validation import check_metadata, encode_content


class Messages(MessageWriter):
    """The message methods of the store."""

    @retried
    def append_message(
        self,
        conversation_id: str,
        role: str,
        content: Any,
        *,
        metadata: dict[str, Any] | None = None,
        message_id: str | None = None,
        type: str = "text",
        sender_id: str | None = None,
        usage: Usage | Mapping[str, Any] | None = None,
    ) -> Message:
        """Append a message to the conversation's active branch and return it.

        Retrying is safe: if ``message_id`` already exists with the same role and
        content, that message is returned and nothing is added; with other content,
        ConcurrencyError is raised.
        """
        new = NewMessage(role, content, metadata, message_id, type, sender_id, usage)
        draft = make_draft(new, self.config.max_message_size)
        return self._append_drafts(conversation_id, [draft])[0]

    @retried
    def append_messages(
        self, conversation_id: str, messages: Iterable[NewMessage | Mapping[str, Any]]
    ) -> list[Message]:
        """Append several messages in order, all or none, and return them."""
        drafts = make_drafts(messages, self.config.max_message_size)
        if not drafts:
            check_id(conversation_id, "conversation_id")
            return []
        return self._append_drafts(conversation_id, drafts)

    @retried
    def get_messages(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        message_ids: Sequence[str] | None = None,
        before_seq: int | None = None,
        after_seq: int | None = None,
        newest_first: bool = False,
    ) -> list[Message]:
        """Messages of the conversation's active branch, oldest first.

        Page by ``limit``/``offset`` or, cheaper on long conversations, by seq cursors:
        ``newest_first=True, limit=50`` gives the newest 50, then ``before_seq=<the
        smallest seq seen>`` the 50 before them. ``message_ids`` picks messages by id
        (in seq order; unknown ids are skipped). Raises ConversationNotFoundError.
        """
        check_id(conversation_id, "conversation_id")
        limit, offset = check_page(limit, offset)
        page = BranchPage(
            limit=limit,
            offset=offset,
            before_seq=check_seq(before_seq, "before_seq"),
            after_seq=check_seq(after_seq, "after_seq"),
            newest_first=bool(newest_first),
        )
        wanted = None if message_ids is None else _id_list(message_ids)
        with self._unit(write=False) as session:
            stamp = self._stamp(session, conversation_id)
            if stamp is None:
                raise ConversationNotFoundError(conversation_id)
            if wanted is not None:
                return page_of(session.get_messages_by_id(conversation_id, wanted), page)
            if self.in_transaction():
                return session.get_branch(conversation_id, page)
            branch = self._branches.get(conversation_id, stamp)
            if branch is None and self.redis is not None:
                branch = self.redis.get_branch(conversation_id, stamp)
                if branch is not None:
                    self._branches.put(conversation_id, stamp, branch)
            if branch is not None:
                return page_of(branch, page)
            if page != BranchPage():
                return session.get_branch(conversation_id, page)
            branch = session.get_branch(conversation_id, page)
        self._branches.put(conversation_id, stamp, branch)
        if self.redis is not None:
            self.redis.put_branch(conversation_id, stamp, branch)
        return list(branch)

    @retried
    def get_message(self, conversation_id: str, message_id: str) -> Message | None:
        """The message, or None if the conversation holds no message with that id."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        with self._unit(write=False) as session:
            if self._owner is not None and self._find(session, conversation_id) is None:
                return None
            return owned(session.find_message(message_id), conversation_id)

    @retried
    def update_message(
        self,
        conversation_id: str,
        message_id: str,
        *,
        content: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message | None:
        """Edit the message in place (None leaves a field as it is); None if missing."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        changes: dict[str, Any] = {}
        content_json = None
        if content is not None:
            content_json = encode_content(content, self.config.max_message_size)
            changes["content"] = content
        if metadata is not None:
            changes["metadata"] = check_metadata(metadata)
        vectors = self._embed_contents([content] if content is not None else [])
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            message = owned(session.find_message(message_id), conversation_id)
            if message is None or conversation is None or not changes:
                return None if conversation is None else message
            check_writable(conversation)
            if content is not None:
                check_content(message.type, content)
            changes["updated_at"] = time.time()
            session.update_message(message_id, changes, content_json)
            self._store_vectors(session, [message], vectors)
            self._touch(session, conversation, {}, "message.updated", {"message_id": message_id})
        return message.model_copy(update=changes)

    @retried
    def delete_message(self, conversation_id: str, message_id: str) -> bool:
        """Delete one message; its replies follow its parent. False if missing."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            message = owned(session.find_message(message_id), conversation_id)
            if message is None or conversation is None:
                return False
            check_writable(conversation)
            self._remove(session, conversation, [message])
        return True

    @retried
    def delete_message_pair(self, conversation_id: str, user_message_id: str) -> list[Message]:
        """Delete a user message and the replies that answer it; return what was deleted.

        The replies are the non-user messages that follow it on its branch, up to the
        next user message. Returns [] if the message does not exist; raises
        InvalidInputError if it is not a user message.
        """
        check_id(conversation_id, "conversation_id")
        check_id(user_message_id, "user_message_id")
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            message = owned(session.find_message(user_message_id), conversation_id)
            if message is None or conversation is None:
                return []
            check_writable(conversation)
            if message.role is not Role.USER:
                raise InvalidInputError(
                    f"message {user_message_id!r} is a {message.role.value} message; "
                    "delete_message_pair takes the id of a user message"
                )
            doomed = [message, *self._replies(session, message)]
            self._remove(session, conversation, doomed)
        return doomed


def _id_list(ids: Sequence[str]) -> list[str]:
    """Checked message ids, from a list (or set) of them."""
    if isinstance(ids, str) or not isinstance(ids, Sequence | set | frozenset):
        raise InvalidInputError("message_ids must be a list of ids")
    return [check_id(i, "message_ids item") for i in ids]
