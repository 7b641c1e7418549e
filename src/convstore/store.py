"""ConversationStore: the native API, and every rule the backends do not know about.

Validation, ids, seq numbers, versions, timestamps, the message tree, the cache and the
change feed are decided here, once, and handed to a Backend as finished records.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from convstore.backends.base import Backend, Change, RepairReport, Session
from convstore.cache import StampedLRUCache
from convstore.config import ConversationManagerConfig
from convstore.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConversationNotFoundError,
    InvalidInputError,
    InvalidStateError,
    MessageNotFoundError,
    StorageError,
)
from convstore.ids import check_id, new_id
from convstore.models import Chunk, Conversation, Message, MessageStatus, NewMessage, Role, Usage
from convstore.queries import (
    BranchPage,
    ConversationFilter,
    ConversationOrder,
    ConversationQuery,
    ConversationSearch,
    MessageFilter,
    MessageSearch,
    check_page,
    check_seq,
    page_of,
    parse_conversation_filter,
    parse_message_filter,
)
from convstore.record_checks import check_records
from convstore.redis_link import RedisLink
from convstore.retry import retried
from convstore.search.embedding import Embedder, as_vectors
from convstore.search.query import MAX_EXPANSIONS, SearchQuery, parse_query
from convstore.search.results import (
    SearchHit,
    SearchMode,
    SearchResults,
    SearchTarget,
    conversation_hit,
    lenient_query,
    make_cursor,
    message_hit,
    read_cursor,
    search_token,
)
from convstore.search.semantic import VectorCache, fuse, to_bytes
from convstore.states import ConversationState, check_transition, parse_state
from convstore.validation import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TYPE_LENGTH,
    check_metadata,
    check_role,
    check_seconds,
    check_text,
    check_usage,
    encode_content,
    text_values,
    token_totals,
)

_ORDERS = ("updated_at", "created_at", "name")
_PAIR_SCAN = 64


@dataclass(frozen=True, slots=True)
class _Draft:
    """A checked message, not yet given its seq, parent and timestamps."""

    role: Role
    content: Any
    metadata: dict[str, Any]
    id: str | None
    type: str
    sender_id: str | None
    usage: Usage | None
    status: MessageStatus = MessageStatus.COMPLETE


class ConversationStore:
    """Conversations and their messages, kept in a Backend.

    Open one with :func:`convstore.open`. A store is safe to share between threads;
    any number of processes may open the same store at once.
    """

    def __init__(self, backend: Backend, config: ConversationManagerConfig) -> None:
        self.config = config
        self._backend = backend
        self._branches: StampedLRUCache[list[Message]] = StampedLRUCache(
            config.max_cache_size, config.cache_ttl
        )
        self._local = threading.local()
        self._closed = False
        self._vectors = VectorCache()
        self._owner: str | None = None
        self._watchers: list[Callable[[], None]] = []  # told after each committed write
        redis_url = config.redis_url or os.environ.get("CONVSTORE_REDIS_URL")
        self.redis = None if not redis_url else RedisLink(redis_url, backend.url, config.cache_ttl)
        if self.redis is not None:
            self.watch_writes(self.redis.announce)

    @property
    def url(self) -> str:
        """The URL this store was opened from."""
        return self._backend.url

    @property
    def user_id(self) -> str | None:
        """The user this store acts for (see :meth:`for_user`); None for the whole store."""
        return self._owner

    def for_user(self, user_id: str) -> ConversationStore:
        """This store as one user sees it: every call sees and changes only conversations
        that user owns (others behave as missing), and new conversations are theirs.

        The view shares connections and caches with this store; closing it does nothing.
        """
        view = copy.copy(self)
        view._owner = check_id(user_id, "user_id")
        return view

    def close(self) -> None:
        """Release connections and files. The store cannot be used afterwards."""
        if self._owner is None and not self._closed:
            self._closed = True
            self._branches.clear()
            if self.redis is not None:
                self.redis.close()
            self._backend.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # units of work ------------------------------------------------------------------

    def _unit(self, write: bool) -> AbstractContextManager[Session]:
        """A backend session, or the one of the transaction open in this thread."""
        active: Session | None = getattr(self._local, "session", None)
        if active is not None:
            return nullcontext(active)
        if self._closed:
            raise StorageError("the store is closed")
        if not write:
            return self._backend.read()
        if self._watchers:
            return _Announced(self._backend.write(), self._watchers)
        return self._backend.write()

    def watch_writes(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (quickly, from the writing thread) after every write this
        store commits: how a change subscriber learns of local writes at once."""
        self._watchers.append(callback)

    # the change feed ------------------------------------------------------------------

    @retried
    def change_mark(self) -> int:
        """The id of the newest change-feed entry (0 for a new store)."""
        with self._unit(write=False) as session:
            return session.change_mark()

    @retried
    def changes_since(self, after: int, limit: int = 1000) -> list[Change]:
        """Up to ``limit`` change-feed entries with ids above ``after``, oldest first. In
        a user's view, only changes to that user's conversations."""
        mark = check_seq(after, "after") or 0
        if limit is None:
            raise InvalidInputError("limit must be an integer from 0 to 10000")
        count, _ = check_page(limit, 0)
        with self._unit(write=False) as session:
            found = session.changes_since(mark, count or 0)
        if self._owner is None:
            return found
        return [c for c in found if c.payload.get("owner_id") == self._owner]

    def in_transaction(self) -> bool:
        """Whether this thread is inside ``store.transaction()``."""
        return getattr(self._local, "session", None) is not None

    @contextmanager
    def transaction(self, conversation_id: str) -> Iterator[None]:
        """Run the block's store calls as one unit: all of them are kept, or none.

        The block holds the store's write lock, so other threads and processes wait for
        it (up to ``lock_timeout``). Calls in the block must come from this thread. A
        transaction opened inside another joins it.
        """
        check_id(conversation_id, "conversation_id")
        if self.in_transaction():
            yield
            return
        with self._unit(write=True) as session:
            if self._stamp(session, conversation_id) is None:
                raise ConversationNotFoundError(conversation_id)
            self._local.session = session
            try:
                yield
            finally:
                self._local.session = None
                self._branches.clear()

    # conversations ------------------------------------------------------------------

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
            check_id(conversation_id, "conversation_id")
        drafts = self._drafts(initial_messages or [])
        vectors = self._embed_contents([d.content for d in drafts])
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
            if conversation_id is not None and session.get_stamp(conversation_id) is not None:
                raise ConcurrencyError(f"conversation {conversation_id!r} already exists")
            session.insert_conversation(conversation)
            _log(session, conversation, "conversation.created", {})
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
                kept = _trash_form(conversation, session.get_all_messages(conversation_id))
                expires = time.time() + self.config.trash_retention
                session.delete_record(_TRASH, conversation_id)  # an older copy
                session.insert_record(_TRASH, conversation_id, kept, expires)
            session.delete_conversation(conversation_id)
            _log(session, conversation, "conversation.deleted", {"soft": soft})
        self._branches.invalidate(conversation_id)
        return True

    @retried
    def restore_conversation(self, conversation_id: str) -> Conversation:
        """Bring back a conversation deleted with ``soft=True`` (within the retention
        time), as it was. ConversationNotFoundError if there is nothing to restore."""
        check_id(conversation_id, "conversation_id")
        with self._unit(write=True) as session:
            kept = session.get_record(_TRASH, conversation_id)
            if kept is None or _expired(kept[1]):
                raise ConversationNotFoundError(conversation_id)
            conversation, messages = _from_trash_form(kept[0])
            if not self._sees(conversation):
                raise ConversationNotFoundError(conversation_id)
            if session.get_stamp(conversation_id) is not None:
                raise ConcurrencyError(f"conversation {conversation_id!r} exists again")
            session.insert_conversation(conversation)
            if messages:
                session.insert_messages(messages)
            session.delete_record(_TRASH, conversation_id)
            _log(session, conversation, "conversation.restored", {})
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

    # messages -----------------------------------------------------------------------

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
        draft = self._draft(NewMessage(role, content, metadata, message_id, type, sender_id, usage))
        return self._append_drafts(conversation_id, [draft])[0]

    @retried
    def append_messages(
        self, conversation_id: str, messages: Iterable[NewMessage | Mapping[str, Any]]
    ) -> list[Message]:
        """Append several messages in order, all or none, and return them."""
        drafts = self._drafts(messages)
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
        wanted = None if message_ids is None else self._id_list(message_ids)
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
            return _owned(session.find_message(message_id), conversation_id)

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
        if content is not None:
            encode_content(content, self.config.max_message_size)
            changes["content"] = content
        if metadata is not None:
            changes["metadata"] = check_metadata(metadata)
        vectors = self._embed_contents([content] if content is not None else [])
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            message = _owned(session.find_message(message_id), conversation_id)
            if message is None or conversation is None or not changes:
                return None if conversation is None else message
            _check_writable(conversation)
            changes["updated_at"] = time.time()
            session.update_message(message_id, changes)
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
            message = _owned(session.find_message(message_id), conversation_id)
            if message is None or conversation is None:
                return False
            _check_writable(conversation)
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
            message = _owned(session.find_message(user_message_id), conversation_id)
            if message is None or conversation is None:
                return []
            _check_writable(conversation)
            if message.role is not Role.USER:
                raise InvalidInputError(
                    f"message {user_message_id!r} is a {message.role.value} message; "
                    "delete_message_pair takes the id of a user message"
                )
            doomed = [message, *self._replies(session, message)]
            self._remove(session, conversation, doomed)
        return doomed

    # state and streamed replies ------------------------------------------------------

    @retried
    def set_state(
        self,
        conversation_id: str,
        state: ConversationState | str,
        *,
        expected_version: int | None = None,
    ) -> Conversation:
        """Move the conversation to ``state`` (see :mod:`convstore.states`) and return it.

        An illegal transition raises InvalidStateError; with ``expected_version``, a
        conversation changed since that version raises ConcurrencyError instead.
        """
        check_id(conversation_id, "conversation_id")
        wanted = parse_state(state)
        if expected_version is not None:
            check_seq(expected_version, "expected_version")
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            if conversation is None:
                raise ConversationNotFoundError(conversation_id)
            if expected_version is not None and conversation.version != expected_version:
                raise ConcurrencyError(
                    f"conversation {conversation_id!r} is at version {conversation.version}, "
                    f"not {expected_version}"
                )
            return self._move(session, conversation, wanted)

    @retried
    def begin_stream(
        self,
        conversation_id: str,
        *,
        role: str = "assistant",
        message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        type: str = "text",
        sender_id: str | None = None,
    ) -> Message:
        """Append an empty message with status "streaming" and move the conversation to
        streaming_response; its content arrives through :meth:`append_chunks` and is
        settled by :meth:`finalize_stream` or :meth:`abort_stream`. Retrying with the
        same ``message_id`` returns the message already begun."""
        new = NewMessage(role, "", metadata, message_id, type, sender_id, None)
        draft = replace(self._draft(new), status=MessageStatus.STREAMING)
        check_id(conversation_id, "conversation_id")
        with self._unit(write=True) as session:
            conversation = self._writable(session, conversation_id)
            updated, (message,) = self._append(session, conversation, [draft])
            if updated.version != conversation.version:  # new, not a retry
                self._move(session, updated, _STREAMING)
        return message

    @retried
    def append_chunks(
        self,
        conversation_id: str,
        message_id: str,
        deltas: Sequence[str],
        *,
        first_seq: int | None = None,
    ) -> list[Chunk]:
        """Add pieces of a streaming message, numbered from ``first_seq`` (by default
        after the last stored one), and return them. Resending chunks already stored
        with the same text changes nothing; a number already used for other text is a
        ConcurrencyError, and one beyond the next free number (a gap) an
        InvalidInputError."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        texts = _chunk_texts(deltas, self.config.max_message_size)
        if first_seq is not None and (check_seq(first_seq, "first_seq") or 0) < 1:
            raise InvalidInputError("first_seq must be at least 1")
        with self._unit(write=True) as session:
            conversation = self._writable(session, conversation_id)
            message = self._streaming(session, conversation_id, message_id)
            last = session.last_chunk_seq(conversation_id, message_id)
            start = last + 1 if first_seq is None else first_seq
            if start > last + 1:
                raise InvalidInputError(
                    f"chunk {start} would leave a gap: message {message_id!r} has "
                    f"{last} chunks, so the next is {last + 1}"
                )
            stored = (  # only a resend overlaps what is stored
                session.get_chunks(conversation_id, message_id, start - 1, len(texts))
                if start <= last
                else []
            )
            for chunk, text in zip(stored, texts, strict=False):
                if chunk.delta != text:
                    raise ConcurrencyError(
                        f"chunk {chunk.seq} of message {message_id!r} was stored with "
                        "other text; a retry must resend the same text"
                    )
            now = time.time()
            fresh = [
                Chunk.from_stored(
                    {"message_id": message.id, "seq": start + i, "delta": text, "created_at": now}
                )
                for i, text in enumerate(texts[len(stored) :], start=len(stored))
            ]
            if fresh:
                session.insert_chunks(conversation_id, fresh)
                payload = {"message_id": message_id, "first_seq": fresh[0].seq}
                payload["last_seq"] = fresh[-1].seq
                _log(session, conversation, "chunks.appended", payload)
        return stored + fresh

    def append_chunk(
        self, conversation_id: str, message_id: str, delta: str, *, seq: int | None = None
    ) -> Chunk:
        """Add one piece of a streaming message (see :meth:`append_chunks`)."""
        return self.append_chunks(conversation_id, message_id, [delta], first_seq=seq)[0]

    @retried
    def get_chunks(
        self, conversation_id: str, message_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[Chunk]:
        """The message's chunks numbered above ``after``, in order: what a client that
        saw chunk ``after`` missed. Raises MessageNotFoundError."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        after = check_seq(after, "after") or 0
        limit, _ = check_page(limit, 0)
        with self._unit(write=False) as session:
            if self._stamp(session, conversation_id) is None:
                raise ConversationNotFoundError(conversation_id)
            if _owned(session.find_message(message_id), conversation_id) is None:
                raise MessageNotFoundError(conversation_id, message_id)
            return session.get_chunks(conversation_id, message_id, after, limit)

    @retried
    def finalize_stream(
        self,
        conversation_id: str,
        message_id: str,
        *,
        finish_reason: str = "stop",
        usage: Usage | Mapping[str, Any] | None = None,
    ) -> Message:
        """Complete a streaming message: its content becomes its chunks joined, its
        usage is counted in the conversation's totals, and the conversation, if it was
        streaming_response, awaits the user. Repeating the call returns the message."""
        finish_reason = check_text(finish_reason, "finish_reason", MAX_TYPE_LENGTH)
        checked_usage = check_usage(usage)
        return self._settle(
            conversation_id,
            message_id,
            MessageStatus.COMPLETE,
            {"finish_reason": finish_reason},
            checked_usage,
            ConversationState.AWAITING_USER,
        )

    @retried
    def abort_stream(
        self, conversation_id: str, message_id: str, *, reason: str | None = None
    ) -> Message:
        """End a streaming message as failed: it keeps the chunks received so far as its
        content, gets status "error", and the conversation, if it was
        streaming_response, moves to error. Repeating the call returns the message."""
        reason = check_text(reason, "reason", MAX_DESCRIPTION_LENGTH, optional=True)
        return self._settle(
            conversation_id,
            message_id,
            MessageStatus.ERROR,
            {"error": reason or "aborted"},
            None,
            ConversationState.ERROR,
        )

    def fail_unfinished_streams(self, *, idle_for: float = 0.0) -> list[Message]:
        """Abort every streaming message that received nothing for ``idle_for`` seconds
        (all of them by default): replies left unfinished by a crashed writer. Run at
        start-up by ``convstore serve``; returns the messages marked error."""
        if isinstance(idle_for, bool) or not isinstance(idle_for, int | float) or idle_for < 0:
            raise InvalidInputError(f"idle_for must be a non-negative number; got {idle_for!r}")
        cutoff = time.time() - idle_for
        with self._unit(write=False) as session:
            stale = [m for m, last in session.streaming_messages() if last <= cutoff]
        failed = []
        for message in stale:
            try:
                failed.append(
                    self.abort_stream(
                        message.conversation_id,
                        message.id,
                        reason="interrupted: the stream was left unfinished",
                    )
                )
            except (ConversationNotFoundError, MessageNotFoundError):
                continue  # deleted meanwhile, or not this user's
        return failed

    # records --------------------------------------------------------------------------

    @retried
    def put_record(
        self, namespace: str, key: str, value: dict[str, Any], *, ttl: float | None = None
    ) -> bool:
        """Keep a small JSON document under ``namespace`` and ``key`` (for ``ttl``
        seconds, or for good), unless one is already there: False in that case.

        Records are store-wide (a user's view sees them all): accounts and idempotency
        keys live here.
        """
        namespace, key = _check_record_key(namespace, key)
        value = check_metadata(value, "value")
        ttl = check_seconds(ttl, "ttl", optional=True, positive=True)
        expires_at = None if ttl is None else time.time() + ttl
        try:
            with self._unit(write=True) as session:
                found = session.get_record(namespace, key)
                if found is not None:
                    if not _expired(found[1]):
                        return False
                    session.delete_record(namespace, key)
                session.insert_record(namespace, key, value, expires_at)
        except ConcurrencyError:  # another writer inserted the same key first
            return False
        return True

    @retried
    def get_record(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The record's value; None if there is none or it expired."""
        namespace, key = _check_record_key(namespace, key)
        with self._unit(write=False) as session:
            found = session.get_record(namespace, key)
        return None if found is None or _expired(found[1]) else found[0]

    @retried
    def list_records(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        """(key, value) of the namespace's live records, by key."""
        namespace, _ = _check_record_key(namespace, "")
        with self._unit(write=False) as session:
            found = session.list_records(namespace)
        return [(key, value) for _, key, value, expires_at in found if not _expired(expires_at)]

    @retried
    def export_records(self) -> list[StoredRecord]:
        """Every live record of every namespace, with its expiry (for moving a store)."""
        with self._unit(write=False) as session:
            found = session.list_records(None)
        return [StoredRecord(*row) for row in found if not _expired(row[3])]

    @retried
    def import_records(self, records: Iterable[StoredRecord]) -> None:
        """Store records exactly as given (expiry kept), replacing any of the same key."""
        checked = []
        for record in records:
            _check_record_key(record.namespace, record.key, internal=True)
            expiry = check_seconds(record.expires_at, "expires_at", optional=True)
            if record.namespace == _TRASH:  # a whole conversation, checked as its import
                value = _checked_trash(record.value)
            else:
                value = check_metadata(record.value, "value")
            checked.append(replace(record, value=value, expires_at=expiry))
        with self._unit(write=True) as session:
            for record in checked:
                session.delete_record(record.namespace, record.key)
                session.insert_record(record.namespace, record.key, record.value, record.expires_at)

    @retried
    def delete_record(self, namespace: str, key: str) -> bool:
        """Delete the record; False if there was none."""
        namespace, key = _check_record_key(namespace, key)
        with self._unit(write=True) as session:
            return session.delete_record(namespace, key)

    # whole records, for backups and moving data -------------------------------------

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
                    raise ConcurrencyError(
                        f"message id {message.id!r} is already used in conversation "
                        f"{holder.conversation_id!r}"
                    )
            if session.get_stamp(conversation.id) is not None:
                if not replace or self._find(session, conversation.id) is None:
                    raise ConcurrencyError(f"conversation {conversation.id!r} already exists")
                session.delete_conversation(conversation.id)
            session.insert_conversation(conversation)
            if messages:
                session.insert_messages(list(messages))
            _log(session, conversation, "conversation.imported", {})
        self._branches.invalidate(conversation.id)

    # search -------------------------------------------------------------------------

    @retried
    def search_conversations(
        self,
        query: str,
        *,
        search_in_messages: bool = True,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Conversation]:
        """Conversations matching ``query`` (the query language of
        :mod:`convstore.search.query`) in their name or description or, by default,
        their messages; best first, names and descriptions weighing most."""
        return [
            c
            for c, _ in self._rank_conversations(query, search_in_messages, filters, limit, offset)
        ]

    @retried
    def search_messages(
        self,
        query: str,
        *,
        conversation_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Message]:
        """Messages matching ``query``, in one conversation or the whole store, best
        first. Only the text inside content counts, not JSON keys or syntax.

        Filters: role, status, conversation_ids, created_after, created_before and
        metadata. Raises ConversationNotFoundError for a missing ``conversation_id``.
        """
        return [m for m, _ in self._rank_messages(query, conversation_id, filters, limit, offset)]

    @retried
    def search(
        self,
        query: str,
        *,
        target: SearchTarget = "messages",
        mode: SearchMode = "text",
        conversation_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchResults:
        """A page of ranked hits with scores and snippets; pass ``next_cursor`` back as
        ``cursor`` for the next page. ``target`` is "messages" or "conversations".

        ``mode`` "text" ranks by the query language (BM25); "semantic" by the meaning of
        the query (nearest message vectors, which needs ``config.embedder``); "hybrid"
        fuses both rankings (reciprocal rank fusion). The last two find messages.
        """
        if target not in ("messages", "conversations"):
            raise InvalidInputError(f"target must be messages or conversations; got {target!r}")
        if mode not in ("text", "semantic", "hybrid"):
            raise InvalidInputError(f"mode must be text, semantic or hybrid; got {mode!r}")
        if mode != "text" and target != "messages":
            raise InvalidInputError(f"{mode} search finds messages, not conversations")
        page_size, _ = check_page(limit, 0)
        if page_size is None:
            raise InvalidInputError("search needs a page size (limit)")
        token = search_token(query, f"{target}/{mode}", conversation_id, filters)
        offset = read_cursor(cursor, token)
        hits: list[SearchHit]
        if mode != "text":
            depth = offset + page_size + 1
            meaning = self._rank_by_meaning(query, mode, conversation_id, filters, depth)
            hits = [message_hit(m, score, lenient_query(query)) for m, score in meaning[offset:]]
        elif target == "messages":
            found = self._rank_messages(query, conversation_id, filters, page_size + 1, offset)
            parsed = parse_query(query)
            hits = [message_hit(m, score, parsed) for m, score in found]
        else:
            ranked = self._rank_conversations(query, True, filters, page_size + 1, offset)
            parsed = parse_query(query)
            hits = [conversation_hit(c, score, parsed) for c, score in ranked]
        following = make_cursor(offset + page_size, token) if len(hits) > page_size else None
        return SearchResults(hits[:page_size], following)

    def _rank_messages(
        self,
        query: str,
        conversation_id: str | None,
        filters: Mapping[str, Any] | None,
        limit: int | None,
        offset: int,
    ) -> list[tuple[Message, float]]:
        parsed = parse_query(query)
        where = replace(_message_scope(conversation_id, filters), owner_id=self._owner)
        limit, offset = check_page(limit, offset)
        with self._unit(write=False) as session:
            if conversation_id is not None and self._stamp(session, conversation_id) is None:
                raise ConversationNotFoundError(conversation_id)
            expanded = _expanded(session, parsed)
            if where.conversation_ids == () or expanded is None:
                return []
            return session.rank_messages(MessageSearch(expanded, where, limit, offset))

    def _rank_by_meaning(
        self,
        query: str,
        mode: SearchMode,
        conversation_id: str | None,
        filters: Mapping[str, Any] | None,
        depth: int,
    ) -> list[tuple[Message, float]]:
        """The ``depth`` best messages by meaning ("semantic") or by meaning and words
        ("hybrid", fused by reciprocal rank), with their scores."""
        embedder = self._embedder()
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        where = replace(_message_scope(conversation_id, filters), owner_id=self._owner)
        vector = as_vectors(embedder, [query])[0]
        textual = (
            [m.id for m, _ in self._rank_messages(query, conversation_id, filters, depth, 0)]
            if mode == "hybrid"
            else []
        )
        with self._unit(write=False) as session:
            if conversation_id is not None and self._stamp(session, conversation_id) is None:
                raise ConversationNotFoundError(conversation_id)
            near = session.nearest_embeddings(embedder.name, where, to_bytes(vector), depth)
            if near is None:  # no index in the database: exact, over the cached matrix
                source = _StoredVectors(session, embedder.name, where)
                mark = session.change_mark()
                near = self._vectors.nearest((embedder.name, where), mark, source, vector, depth)
            else:
                near.sort(key=lambda pair: (-round(pair[1], 6), pair[0]))  # as the exact path
            ranked = fuse([[i for i, _ in near], textual]) if mode == "hybrid" else near
            found = [(session.find_message(i), score) for i, score in ranked[:depth]]
        return [(m, score) for m, score in found if m is not None]

    @retried
    def embed_missing(
        self, *, batch_size: int = 64, on_progress: Callable[[int], object] | None = None
    ) -> int:
        """Compute the vectors that messages lack for ``config.embedder`` (those written
        before it was configured, or with embed_on_append off); how many were added."""
        embedder = self._embedder()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer; got {batch_size!r}")
        done = 0
        while True:
            with self._unit(write=False) as session:
                batch = session.messages_without_embeddings(embedder.name, batch_size)
            if not batch:
                return done
            vectors = as_vectors(embedder, [_text_of(m.content) for m in batch])
            with self._unit(write=True) as session:
                alive = [
                    (m, v)
                    for m, v in zip(batch, vectors, strict=True)
                    if session.find_message(m.id)
                ]
                session.put_embeddings(embedder.name, {m.id: to_bytes(v) for m, v in alive})
                for conversation_id in sorted({m.conversation_id for m, _ in alive}):
                    embedded = [m.id for m, _ in alive if m.conversation_id == conversation_id]
                    session.record_change(
                        conversation_id, "messages.embedded", {"message_ids": embedded}
                    )
            done += len(batch)
            if on_progress is not None:
                on_progress(done)

    def _embedder(self) -> Embedder:
        if self.config.embedder is None:
            raise ConfigurationError(
                "semantic search needs an embedder: ConversationManagerConfig(embedder=...)"
            )
        return self.config.embedder

    def _embed_contents(self, contents: Sequence[Any]) -> list[bytes] | None:
        """Vectors for message contents about to be written, if the store makes them."""
        embedder = self.config.embedder
        if embedder is None or not self.config.embed_on_append or not contents:
            return None
        return [to_bytes(v) for v in as_vectors(embedder, [_text_of(c) for c in contents])]

    def _store_vectors(
        self, session: Session, messages: Sequence[Message], vectors: list[bytes] | None
    ) -> None:
        if vectors is not None and self.config.embedder is not None:
            by_id = {m.id: v for m, v in zip(messages, vectors, strict=True)}
            session.put_embeddings(self.config.embedder.name, by_id)

    def _rank_conversations(
        self,
        query: str,
        in_messages: bool,
        filters: Mapping[str, Any] | None,
        limit: int | None,
        offset: int,
    ) -> list[tuple[Conversation, float]]:
        parsed = parse_query(query)
        where = self._scoped(parse_conversation_filter(filters))
        limit, offset = check_page(limit, offset)
        with self._unit(write=False) as session:
            expanded = _expanded(session, parsed)
            if expanded is None:
                return []
            search = ConversationSearch(expanded, where, bool(in_messages), limit, offset)
            return session.rank_conversations(search)

    # health -------------------------------------------------------------------------

    def health_check(self) -> dict[str, Any]:
        """Status, counts, disk usage and cache figures; never raises."""
        report: dict[str, Any] = {"status": "healthy", "backend": self.url.split(":", 1)[0]}
        try:
            with self._unit(write=False) as session:
                report["conversations_count"] = session.count_conversations(
                    parse_conversation_filter(None)
                )
                report["total_messages"] = session.count_messages()
            report["disk_usage"] = self.disk_usage()
        except Exception as exc:  # a health check reports failures instead of raising them
            report.update(status="unhealthy", error=f"{type(exc).__name__}: {exc}")
        report["last_backup"] = None
        report["locks_status"] = {
            "lock_timeout": self.config.lock_timeout,
            "transaction_open_in_this_thread": self.in_transaction(),
        }
        report["cache"] = self._branches.stats()
        if self.redis is not None:
            report["redis"] = self.redis.stats()
        return report

    def disk_usage(self) -> int:
        """Bytes the store occupies on disk (0 in memory)."""
        return self._backend.disk_usage()

    def check_integrity(self) -> list[str]:
        """Every structural problem found in the stored data; [] means intact."""
        return list(self._backend.integrity_problems())

    def repair(self) -> RepairReport:
        """Fix what the backend can fix in place without losing data; what was done,
        and which conversations were set aside as damaged."""
        try:
            return self._backend.repair()
        finally:
            self._branches.clear()

    # internals ----------------------------------------------------------------------

    def _sees(self, conversation: Conversation) -> bool:
        """Whether this store (or user's view of it) may see the conversation."""
        return self._owner is None or conversation.owner_id == self._owner

    def _find(self, session: Session, conversation_id: str) -> Conversation | None:
        """The conversation, if it exists and this store may see it."""
        conversation = session.get_conversation(conversation_id)
        return conversation if conversation is not None and self._sees(conversation) else None

    def _stamp(self, session: Session, conversation_id: str) -> tuple[float, int] | None:
        """The conversation's stamp, if it exists and this store may see it."""
        if self._owner is None:
            return session.get_stamp(conversation_id)
        conversation = self._find(session, conversation_id)
        return None if conversation is None else (conversation.created_at, conversation.version)

    def _scoped(self, where: ConversationFilter | None) -> ConversationFilter:
        """``where``, narrowed to this store's user (matching nothing for another user)."""
        where = where or ConversationFilter()
        if self._owner is None:
            return where
        if where.owner_id not in (None, self._owner):
            return replace(where, conversation_ids=())
        return replace(where, owner_id=self._owner)

    def _writable(self, session: Session, conversation_id: str) -> Conversation:
        """The conversation, which must exist, be visible and not be archived."""
        conversation = self._find(session, conversation_id)
        if conversation is None:
            raise ConversationNotFoundError(conversation_id)
        _check_writable(conversation)
        return conversation

    def _streaming(self, session: Session, conversation_id: str, message_id: str) -> Message:
        """The message, which must be in the conversation and still streaming."""
        message = _owned(session.find_message(message_id), conversation_id)
        if message is None:
            raise MessageNotFoundError(conversation_id, message_id)
        if message.status is not MessageStatus.STREAMING:
            raise InvalidStateError(
                f"message {message_id!r} is {message.status.value}, not streaming"
            )
        return message

    def _settle(
        self,
        conversation_id: str,
        message_id: str,
        status: MessageStatus,
        note: dict[str, Any],
        usage: Usage | None,
        next_state: ConversationState,
    ) -> Message:
        """End a stream: content from the chunks, ``status``, ``note`` added to the
        metadata, usage counted; the conversation moves on from streaming_response."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        with self._unit(write=True) as session:
            conversation = self._writable(session, conversation_id)
            message = _owned(session.find_message(message_id), conversation_id)
            if message is not None and message.status is status:
                return message  # a repeated call
            message = self._streaming(session, conversation_id, message_id)
            chunks = session.get_chunks(conversation_id, message_id, 0, None)
            content = "".join(chunk.delta for chunk in chunks)
            encode_content(content, self.config.max_message_size)
            totals = {} if usage is None else token_totals(conversation, [usage])
            changes: dict[str, Any] = {
                "content": content,
                "status": status,
                "metadata": {**message.metadata, **note},
                "updated_at": time.time(),
            }
            if usage is not None:
                changes["usage"] = usage
            session.update_message(message_id, changes)
            settled = message.model_copy(update=changes)
            if status is MessageStatus.COMPLETE:
                self._store_vectors(session, [settled], self._embed_contents([content]))
            payload = {"message_id": message_id, "status": status.value}
            conversation = self._touch(session, conversation, totals, "message.updated", payload)
            if conversation.state == _STREAMING:
                self._move(session, conversation, next_state)
        return settled

    def _move(
        self, session: Session, conversation: Conversation, state: ConversationState
    ) -> Conversation:
        """Move the conversation to ``state`` if the state machine allows it."""
        if conversation.state == state:
            return conversation
        check_transition(conversation.id, conversation.state, state)
        payload = {"from": conversation.state, "to": state.value}
        return self._touch(session, conversation, {"state": state.value}, "state.changed", payload)

    def _draft(self, new: NewMessage) -> _Draft:
        encode_content(new.content, self.config.max_message_size)
        return _Draft(
            role=check_role(new.role),
            content=new.content,
            metadata=check_metadata(new.metadata),
            id=None if new.id is None else check_id(new.id, "message_id"),
            type=check_text(new.type, "type", MAX_TYPE_LENGTH),
            sender_id=None if new.sender_id is None else check_id(new.sender_id, "sender_id"),
            usage=check_usage(new.usage),
        )

    def _drafts(self, messages: Iterable[NewMessage | Mapping[str, Any]]) -> list[_Draft]:
        if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
            raise InvalidInputError("messages must be a list of messages")
        drafts = []
        for index, item in enumerate(messages):
            if isinstance(item, Mapping):
                new = _new_message_from_mapping(item, index)
            elif isinstance(item, NewMessage):
                new = item
            else:
                raise InvalidInputError(
                    f"messages[{index}] must be a dict or NewMessage, not {type(item).__name__}"
                )
            try:
                drafts.append(self._draft(new))
            except InvalidInputError as exc:
                raise InvalidInputError(f"messages[{index}]: {exc.message}") from None
        return drafts

    def _id_list(self, ids: Sequence[str]) -> list[str]:
        if isinstance(ids, str) or not isinstance(ids, Sequence | set | frozenset):
            raise InvalidInputError("message_ids must be a list of ids")
        return [check_id(i, "message_ids item") for i in ids]

    def _append_drafts(self, conversation_id: str, drafts: list[_Draft]) -> list[Message]:
        check_id(conversation_id, "conversation_id")
        vectors = self._embed_contents([d.content for d in drafts])
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            if conversation is None:
                raise ConversationNotFoundError(conversation_id)
            _check_writable(conversation)
            _, appended = self._append(session, conversation, drafts)
            self._store_vectors(session, appended, vectors)
        self._branches.invalidate(conversation_id)
        return appended

    def _append(
        self, session: Session, conversation: Conversation, drafts: list[_Draft]
    ) -> tuple[Conversation, list[Message]]:
        """Insert the drafts after the head; retried ids return what is stored."""
        result: list[Message] = []
        fresh: list[Message] = []
        seen: dict[str, Message] = {}
        seq, parent, now = conversation.last_seq, conversation.head_message_id, time.time()
        for draft in drafts:
            earlier = None
            if draft.id is not None:
                earlier = seen.get(draft.id) or session.find_message(draft.id)
                if earlier is not None:
                    _check_retry(earlier, draft, conversation.id)
                    result.append(earlier)
                    continue
            seq += 1
            message = Message.from_stored(  # every field was checked by _draft
                {
                    "id": draft.id or new_id(),
                    "conversation_id": conversation.id,
                    "parent_id": parent,
                    "seq": seq,
                    "role": draft.role,
                    "type": draft.type,
                    "content": draft.content,
                    "status": draft.status,
                    "sender_id": draft.sender_id,
                    "created_at": now,
                    "updated_at": now,
                    "metadata": draft.metadata,
                    "usage": draft.usage,
                }
            )
            parent = message.id
            seen[message.id] = message
            fresh.append(message)
            result.append(message)
        if not fresh:
            return conversation, result
        totals = token_totals(conversation, [m.usage for m in fresh if m.usage is not None])
        session.insert_messages(fresh)
        changes: dict[str, Any] = {
            "last_seq": seq,
            "head_message_id": parent,
            "message_count": conversation.message_count + len(fresh),
            **totals,
        }
        if conversation.state == ConversationState.INITIAL:  # the first words make it active
            changes["state"] = ConversationState.ACTIVE.value
            _log(session, conversation, "state.changed", {"from": "initial", "to": "active"})
        updated = self._touch(
            session,
            conversation,
            changes,
            "messages.appended",
            {"message_ids": [m.id for m in fresh], "first_seq": fresh[0].seq, "last_seq": seq},
            now=now,
        )
        return updated, result

    def _touch(
        self,
        session: Session,
        conversation: Conversation,
        changes: dict[str, Any],
        kind: str,
        payload: dict[str, Any],
        now: float | None = None,
    ) -> Conversation:
        """Write ``changes`` to the conversation, bump its version and log the change."""
        values = {
            **changes,
            "version": conversation.version + 1,
            "updated_at": max(now or time.time(), conversation.updated_at),
        }
        session.update_conversation(conversation.id, values)
        _log(session, conversation, kind, payload)
        self._branches.invalidate(conversation.id)
        return conversation.model_copy(update=values)

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


@dataclass(frozen=True)
class _StoredVectors:
    """The vectors of one model and filter, as a VectorCache reads them in a read unit."""

    session: Session
    model: str
    where: MessageFilter

    def read_all(self) -> list[tuple[str, bytes]]:
        return self.session.get_embeddings(self.model, self.where)

    def read_some(self, message_ids: Sequence[str]) -> list[tuple[str, bytes]]:
        return self.session.get_embeddings(self.model, self.where, message_ids)

    def changes_since(self, mark: int, limit: int) -> list[Change]:
        return self.session.changes_since(mark, limit)


def _expanded(session: Session, query: SearchQuery) -> SearchQuery | None:
    """The query with its *contains* terms looked up in the store's vocabulary (None
    when one of them that must match stands for no stored word)."""
    return query.expanded(lambda fragment: session.words_containing(fragment, MAX_EXPANSIONS))


def _message_scope(conversation_id: str | None, filters: Mapping[str, Any] | None) -> MessageFilter:
    """The message filter of a search, narrowed to one conversation if given."""
    where = parse_message_filter(filters)
    if conversation_id is None:
        return where
    check_id(conversation_id, "conversation_id")
    scope = where.conversation_ids
    inside = scope is None or conversation_id in scope
    return replace(where, conversation_ids=(conversation_id,) if inside else ())


def _text_of(content: Any) -> str:
    """The text a message's vector describes: the strings inside its content."""
    return "\n".join(text_values(content))


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


_TRASH = "_trash"  # the records namespace of softly deleted conversations
_STREAMING = ConversationState.STREAMING_RESPONSE
_NAMESPACE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_MAX_RECORD_KEY = 255


@dataclass(frozen=True)
class StoredRecord:
    """A record with its place and lifetime, as export_records gives it."""

    namespace: str
    key: str
    value: dict[str, Any]
    expires_at: float | None


def _check_record_key(namespace: object, key: object, *, internal: bool = False) -> tuple[str, str]:
    """The namespace and key if valid; ``internal`` admits the store's own namespaces."""
    if internal and namespace == _TRASH:
        return _TRASH, check_text(key, "key", _MAX_RECORD_KEY)
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise InvalidInputError(
            f"namespace must be 1-64 of a-z, 0-9, _ . - starting with a letter; got {namespace!r}"
        )
    return namespace, check_text(key, "key", _MAX_RECORD_KEY)


def _chunk_texts(deltas: Sequence[str], max_bytes: int) -> list[str]:
    if isinstance(deltas, str) or not isinstance(deltas, Sequence) or not deltas:
        raise InvalidInputError("deltas must be a non-empty list of strings")
    return [check_text(d, f"deltas[{i}]", max_bytes) for i, d in enumerate(deltas)]


class _Announced:
    """A write unit that tells the store's watchers once it has committed."""

    def __init__(self, unit: AbstractContextManager[Session], watchers: list[Callable[[], None]]):
        self._unit = unit
        self._watchers = watchers

    def __enter__(self) -> Session:
        return self._unit.__enter__()

    def __exit__(self, *exc_info: Any) -> bool | None:
        suppressed = self._unit.__exit__(*exc_info)
        if exc_info[0] is None:
            for watcher in self._watchers:
                watcher()
        return suppressed


def _log(session: Session, conversation: Conversation, kind: str, payload: dict[str, Any]) -> None:
    """Record a change of the conversation in the change feed, naming its owner so that
    subscribers can be shown only their own changes."""
    session.record_change(conversation.id, kind, {**payload, "owner_id": conversation.owner_id})


def _check_writable(conversation: Conversation) -> None:
    if conversation.state == ConversationState.ARCHIVED:
        raise InvalidStateError(
            f"conversation {conversation.id!r} is archived; make it active to change it"
        )


def _trash_form(conversation: Conversation, messages: Sequence[Message]) -> dict[str, Any]:
    return {
        "conversation": conversation.model_dump(mode="json"),
        "messages": [m.model_dump(mode="json") for m in messages],
    }


def _from_trash_form(document: Mapping[str, Any]) -> tuple[Conversation, list[Message]]:
    conversation = Conversation.model_validate(document["conversation"])
    return conversation, [Message.model_validate(m) for m in document["messages"]]


def _checked_trash(document: Any) -> dict[str, Any]:
    """A softly deleted conversation given to import_records, checked as an import of
    the conversation would be (as one JSON value it may well pass a record's limits)."""
    try:
        check_records(*_from_trash_form(document))
    except (ValidationError, KeyError, TypeError) as exc:
        problem = str(exc).splitlines()[0]
        raise InvalidInputError(f"a trash record is not a conversation: {problem}") from None
    return dict(document)


def _expired(expires_at: float | None) -> bool:
    return expires_at is not None and expires_at <= time.time()


def _owned(message: Message | None, conversation_id: str) -> Message | None:
    return message if message is not None and message.conversation_id == conversation_id else None


def _check_retry(stored: Message, draft: _Draft, conversation_id: str) -> None:
    if (
        stored.conversation_id != conversation_id
        or stored.role is not draft.role
        or stored.content != draft.content
    ):
        raise ConcurrencyError(
            f"message id {stored.id!r} is already used by a different message; "
            "a retry must repeat the same conversation, role and content"
        )


_NEW_MESSAGE_FIELDS = {
    "role",
    "content",
    "metadata",
    "message_id",
    "id",
    "type",
    "sender_id",
    "usage",
}


def _new_message_from_mapping(item: Mapping[str, Any], index: int) -> NewMessage:
    unknown = sorted(str(k) for k in item if k not in _NEW_MESSAGE_FIELDS)
    if unknown:
        raise InvalidInputError(f"messages[{index}] has unknown fields: {', '.join(unknown)}")
    for required in ("role", "content"):
        if required not in item:
            raise InvalidInputError(f"messages[{index}] has no {required!r}")
    return NewMessage(
        role=item["role"],
        content=item["content"],
        metadata=item.get("metadata"),
        id=item.get("message_id", item.get("id")),
        type=item.get("type", "text"),
        sender_id=item.get("sender_id"),
        usage=item.get("usage"),
    )
