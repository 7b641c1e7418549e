"""The Backend protocol: the few storage primitives every backend implements.

A backend stores and fetches records; it holds no policy. Ids, seq numbers, versions,
timestamps, validation and the shape of the message tree are decided by the store
(``convstore.store``) and handed down here already made.

Work happens in units: ``backend.write()`` yields a :class:`Session` that holds the
store-wide write lock (across threads and processes) until the block ends, and commits
all of it or none of it; ``backend.read()`` yields a session that sees one consistent
snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from convstore.models import Change, Chunk, Conversation, Message
from convstore.queries import (
    BranchPage,
    ConversationFilter,
    ConversationQuery,
    ConversationSearch,
    MessageFilter,
    MessageSearch,
)


@dataclass
class RepairReport:
    """What a repair did, and the conversations it had to set aside as damaged (their
    last good state can only come back from a backup)."""

    actions: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)


class ConversationRows(Protocol):
    """Conversation rows: read, write, list and count them."""

    def get_conversation(self, conversation_id: str) -> Conversation | None: ...
    def get_stamp(self, conversation_id: str) -> tuple[float, int] | None:
        """(created_at, version): changes whenever the conversation or its messages do."""

    def insert_conversation(self, conversation: Conversation) -> None: ...
    def update_conversation(self, conversation_id: str, values: Mapping[str, Any]) -> None: ...
    def delete_conversation(self, conversation_id: str) -> None:
        """Delete the conversation and every row derived from it."""

    def list_conversations(self, query: ConversationQuery) -> list[Conversation]:
        """A page of conversations, in the query's order."""

    def count_conversations(self, where: ConversationFilter) -> int: ...


class MessageRows(Protocol):
    """Message rows: the message tree of each conversation and its active branch."""

    def count_messages(self) -> int: ...
    def insert_messages(
        self, messages: Sequence[Message], contents_json: Sequence[str] | None = None
    ) -> None:
        """Insert messages that extend the conversation's active branch.

        ``contents_json``, when given, holds each message's content as JSON text, made
        once by the store's checks: a backend that stores the text uses it as it is."""

    def find_message(self, message_id: str) -> Message | None:
        """The message with this id in any conversation (ids are store-wide)."""

    def get_messages_by_id(self, conversation_id: str, message_ids: Sequence[str]) -> list[Message]:
        """Those of ``message_ids`` that are in the conversation, by seq."""

    def get_branch(self, conversation_id: str, page: BranchPage) -> list[Message]:
        """A page of the active branch, in the order the page asks for."""

    def get_all_messages(self, conversation_id: str) -> list[Message]:
        """Every message of the conversation, on any branch, by seq."""

    def update_message(
        self, message_id: str, values: Mapping[str, Any], content_json: str | None = None
    ) -> None:
        """Change the message's fields; ``content_json``, when given, is the new content
        as JSON text (see insert_messages)."""

    def delete_messages(self, conversation_id: str, message_ids: Sequence[str]) -> None: ...
    def set_active_branch(self, conversation_id: str, head_id: str | None) -> None:
        """Make the active branch (what get_branch reads) the path from a root to
        ``head_id``, or nothing when None. Inserted messages join the active branch;
        a caller that inserts other branches (an import) calls this afterwards."""

    def reparent_messages(
        self, conversation_id: str, old_parent_id: str, new_parent_id: str | None
    ) -> None:
        """Give the children of ``old_parent_id`` the parent ``new_parent_id``."""


class Ranking(Protocol):
    """Full-text search over messages, names and descriptions."""

    def rank_messages(self, search: MessageSearch) -> list[tuple[Message, float]]:
        """A page of the messages matching the search, best first, with their scores
        (higher is better; comparable only within one search)."""

    def rank_conversations(self, search: ConversationSearch) -> list[tuple[Conversation, float]]:
        """A page of the conversations matching the search, best first, with scores.
        Matches in names and descriptions count for more than matches in messages."""

    def words_containing(self, fragment: str, limit: int) -> list[str]:
        """Up to ``limit`` distinct index terms of messages, names or descriptions that
        contain ``fragment`` (folded letters and digits), shortest first, then in code
        point order. Terms of deleted text may still be listed (they then match nothing)."""


class Chunks(Protocol):
    """The chunks of streamed replies."""

    def insert_chunks(self, conversation_id: str, chunks: Sequence[Chunk]) -> None:
        """Store chunks of a streaming message of the conversation (new seq numbers)."""

    def get_chunks(
        self, conversation_id: str, message_id: str, after: int, limit: int | None
    ) -> list[Chunk]:
        """Up to ``limit`` chunks of the message with seq > ``after``, by seq."""

    def last_chunk_seq(self, conversation_id: str, message_id: str) -> int:
        """The highest chunk seq of the message (0 when it has none)."""

    def streaming_messages(self) -> list[tuple[Message, float]]:
        """Every message still streaming, with the time of its last chunk (or of its
        creation, if it has none)."""


class Records(Protocol):
    """Small JSON records by namespace and key, with an optional expiry time."""

    def get_record(self, namespace: str, key: str) -> tuple[dict[str, Any], float | None] | None:
        """The record's value and expiry time, expired or not; None if there is none."""

    def insert_record(
        self, namespace: str, key: str, value: Mapping[str, Any], expires_at: float | None
    ) -> None:
        """Store a record under a free namespace and key; if a concurrent unit took the
        key first, raise ConcurrencyError (by the end of the unit at the latest)."""

    def delete_record(self, namespace: str, key: str) -> bool:
        """Delete the record; False if there was none."""

    def list_records(
        self, namespace: str | None
    ) -> list[tuple[str, str, dict[str, Any], float | None]]:
        """(namespace, key, value, expires_at) of every record of the namespace (of
        every namespace when None), by namespace and key."""


class Vectors(Protocol):
    """Message embeddings, per embedding model."""

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> None:
        """Store (or replace) the vectors of messages, by message id, for ``model``."""

    def get_embeddings(
        self, model: str, where: MessageFilter, message_ids: Sequence[str] | None = None
    ) -> list[tuple[str, bytes]]:
        """(message id, vector) of the live messages matching ``where`` that have one
        (only those of ``message_ids``, if given)."""

    def nearest_embeddings(
        self, model: str, where: MessageFilter, vector: bytes, k: int
    ) -> list[tuple[str, float]] | None:
        """The ``k`` stored vectors of live messages matching ``where`` most similar to
        ``vector``, as (message id, cosine similarity), through the database's own
        vector index; None when it has none (the store then searches exactly)."""

    def messages_without_embeddings(self, model: str, limit: int) -> list[Message]:
        """Up to ``limit`` messages that have no vector for ``model`` yet."""


class ChangeFeed(Protocol):
    """The store's change feed: a strictly increasing sequence of changes."""

    def record_change(self, conversation_id: str, kind: str, payload: Mapping[str, Any]) -> None:
        """Append an entry to the store's change feed, in this unit of work."""

    def change_mark(self) -> int:
        """The id of the newest change-feed entry: it moves whenever anything changes."""

    def changes_since(self, mark: int, limit: int) -> list[Change]:
        """Up to ``limit`` change-feed entries newer than ``mark``, oldest first."""


class Session(
    ConversationRows, MessageRows, Ranking, Chunks, Records, Vectors, ChangeFeed, Protocol
):
    """The primitives available inside one unit of work: everything a backend owes."""


class Backend(Protocol):
    """A place conversations are stored, opened from a URL."""

    url: str

    def read(self) -> AbstractContextManager[Session]: ...
    def write(self) -> AbstractContextManager[Session]: ...
    def close(self) -> None: ...
    def disk_usage(self) -> int:
        """Bytes the store occupies on disk (0 when it lives in memory)."""

    def integrity_problems(self) -> Iterator[str]:
        """Describe every structural problem found in the stored data (none = healthy)."""

    def repair(self) -> RepairReport:
        """Fix what can be fixed in place without losing data; describe each action."""
