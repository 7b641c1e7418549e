"""The store's spine: units of work, write watchers, the change feed and user views.

Every concern of :class:`~convstore.store.ConversationStore` (conversations, messages,
streams, records, search, transfer, health) is a mixin built on :class:`StoreCore`,
which owns the backend, the branch cache and the rules they all share: which
conversations a view may see, how a change bumps a conversation's version and lands in
the change feed.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import Any, Self

from convstore.backends.base import Backend, Session
from convstore.cache import StampedLRUCache
from convstore.config import ConversationManagerConfig
from convstore.errors import (
    ConversationNotFoundError,
    InvalidInputError,
    InvalidStateError,
    StorageError,
)
from convstore.ids import check_id, scoped_id
from convstore.models import Change, Conversation, Message
from convstore.queries import ConversationFilter, check_page, check_seq
from convstore.redis_link import RedisLink
from convstore.retry import retried
from convstore.search.semantic import VectorCache
from convstore.states import ConversationState, check_transition

operations_log = logging.getLogger("convstore.operations")


class StoreCore:
    """The backend, caches and shared rules beneath every concern of the store."""

    def __init__(self, backend: Backend, config: ConversationManagerConfig) -> None:
        self.config = config
        self._backend = backend
        self._branches: StampedLRUCache[list[Message]] = StampedLRUCache(
            config.max_cache_size, config.cache_ttl
        )
        self._local = threading.local()
        self._closed = False
        self._vectors = VectorCache()  # exact-search matrices, shared with the views
        self._owner: str | None = None
        self._watchers: list[Callable[[], None]] = []  # told after each committed write
        redis_url = config.resolved_redis_url
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

    def for_user(self, user_id: str) -> Self:
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
        return _Committing(self._backend.write(), self._local, self._watchers)

    def watch_writes(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (quickly, from the writing thread) after every write this
        store commits: how a change subscriber learns of local writes at once."""
        self._watchers.append(callback)

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

    # what a view sees -----------------------------------------------------------------

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

    def _own_id(self, chosen: str | None) -> str | None:
        """The id to store for an id the caller chose: in a user's view, scoped to that
        user (see :func:`convstore.ids.scoped_id`), so ids never collide across users."""
        if chosen is None or self._owner is None:
            return chosen
        return scoped_id(chosen, self._owner)

    def _writable(self, session: Session, conversation_id: str) -> Conversation:
        """The conversation, which must exist, be visible and not be archived."""
        conversation = self._find(session, conversation_id)
        if conversation is None:
            raise ConversationNotFoundError(conversation_id)
        check_writable(conversation)
        return conversation

    # how a change is written ------------------------------------------------------------

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
        self._log_change(session, conversation, kind, payload)
        self._branches.invalidate(conversation.id)
        return conversation.model_copy(update=values)

    def _log_change(
        self, session: Session, conversation: Conversation, kind: str, payload: dict[str, Any]
    ) -> None:
        """Record a change of the conversation in the change feed, naming its owner so
        that subscribers can be shown only their own changes; the operation log gets a
        line for it once the unit commits."""
        session.record_change(conversation.id, kind, {**payload, "owner_id": conversation.owner_id})
        pending: list[tuple[str, str]] | None = getattr(self._local, "operations", None)
        if pending is not None:
            pending.append((kind, conversation.id))

    def _move(
        self,
        session: Session,
        conversation: Conversation,
        state: ConversationState,
        details: dict[str, Any] | None = None,
    ) -> Conversation:
        """Move the conversation to ``state`` with its checked ``details`` (none by
        default, which clears the old ones) if the state machine allows it."""
        details = details or {}
        if conversation.state == state and conversation.state_details == details:
            return conversation
        check_transition(conversation.id, conversation.state, state)
        payload: dict[str, Any] = {"from": conversation.state, "to": state.value}
        if details:
            payload["details"] = details
        changes = {"state": state.value, "state_details": details}
        return self._touch(session, conversation, changes, "state.changed", payload)


class _Committing:
    """A write unit that, once it has committed, logs the operations it made (one INFO
    line each on the ``convstore.operations`` logger: operation and conversation id,
    never content) and tells the store's watchers."""

    def __init__(
        self,
        unit: AbstractContextManager[Session],
        local: threading.local,
        watchers: list[Callable[[], None]],
    ):
        self._unit = unit
        self._local = local
        self._watchers = watchers

    def __enter__(self) -> Session:
        session = self._unit.__enter__()
        self._local.operations = []
        return session

    def __exit__(self, *exc_info: Any) -> bool | None:
        operations: list[tuple[str, str]] = self._local.operations
        self._local.operations = None
        suppressed = self._unit.__exit__(*exc_info)
        if exc_info[0] is None:
            for kind, conversation_id in operations:
                operations_log.info(
                    "%s %s",
                    kind,
                    conversation_id,
                    extra={"fields": {"operation": kind, "conversation_id": conversation_id}},
                )
            for watcher in self._watchers:
                watcher()
        return suppressed


def insert_tree(session: Session, conversation: Conversation, messages: Sequence[Message]) -> None:
    """Insert a conversation's messages given whole (any branches: an import, a restore)
    and make the path to its head the active branch."""
    if messages:
        session.insert_messages(messages)
        session.set_active_branch(conversation.id, None)  # every inserted row joined it
        session.set_active_branch(conversation.id, conversation.head_message_id)


def check_writable(conversation: Conversation) -> None:
    """Refuse changes to an archived conversation."""
    if conversation.state == ConversationState.ARCHIVED:
        raise InvalidStateError(
            f"conversation {conversation.id!r} is archived; make it active to change it"
        )


def owned(message: Message | None, conversation_id: str) -> Message | None:
    """The message if it belongs to the conversation (message ids are store-wide)."""
    return message if message is not None and message.conversation_id == conversation_id else None
