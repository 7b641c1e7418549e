"""Search: ranked full-text search of messages and conversations, semantic and hybrid
search of messages, and the vectors that semantic search reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from convstore.backends.base import Session
from convstore.errors import ConfigurationError, ConversationNotFoundError, InvalidInputError
from convstore.ids import check_id
from convstore.models import Change, Conversation, Message
from convstore.queries import (
    ConversationSearch,
    MessageFilter,
    MessageSearch,
    check_page,
    parse_conversation_filter,
    parse_message_filter,
)
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
from convstore.search.semantic import fuse, to_bytes
from convstore.store.writing import MessageWriter, text_of


class Search(MessageWriter):
    """The search methods of the store."""

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
        min_score: float | None = None,
    ) -> SearchResults:
        """A page of ranked hits with scores and snippets; pass ``next_cursor`` back as
        ``cursor`` for the next page. ``target`` is "messages" or "conversations".

        ``mode`` "text" ranks by the query language (BM25); "semantic" by the meaning of
        the query (nearest message vectors, which needs ``config.embedder``); "hybrid"
        fuses both rankings (reciprocal rank fusion). The last two find messages, and
        only those whose meaning is closer to the query than ``min_score`` (cosine
        similarity; ``config.semantic_min_score``, 0.2, by default; -1 keeps every
        message): hybrid search still finds every message that matches the words.
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
        floor = _min_score(self.config.semantic_min_score if min_score is None else min_score)
        token = search_token(query, f"{target}/{mode}/{floor}", conversation_id, filters)
        offset = read_cursor(cursor, token)
        hits: list[SearchHit]
        if mode != "text":
            depth = offset + page_size + 1
            meaning = self._rank_by_meaning(query, mode, conversation_id, filters, depth, floor)
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
            vectors = as_vectors(embedder, [text_of(m.content) for m in batch])
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

    def _rank_messages(
        self,
        query: str,
        conversation_id: str | None,
        filters: Mapping[str, Any] | None,
        limit: int | None,
        offset: int,
    ) -> list[tuple[Message, float]]:
        """A page of messages matching the query, best first, with their scores."""
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
        floor: float,
    ) -> list[tuple[Message, float]]:
        """The ``depth`` best messages by meaning ("semantic") or by meaning and words
        ("hybrid", fused by reciprocal rank), with their scores; by meaning, only those
        scoring above ``floor``."""
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
            near = [(i, score) for i, score in near if score > floor]
            ranked = fuse([[i for i, _ in near], textual]) if mode == "hybrid" else near
            found = [(session.find_message(i), score) for i, score in ranked[:depth]]
        return [(m, score) for m, score in found if m is not None]

    def _rank_conversations(
        self,
        query: str,
        in_messages: bool,
        filters: Mapping[str, Any] | None,
        limit: int | None,
        offset: int,
    ) -> list[tuple[Conversation, float]]:
        """A page of conversations matching the query, best first, with their scores."""
        parsed = parse_query(query)
        where = self._scoped(parse_conversation_filter(filters))
        limit, offset = check_page(limit, offset)
        with self._unit(write=False) as session:
            expanded = _expanded(session, parsed)
            if expanded is None:
                return []
            search = ConversationSearch(expanded, where, bool(in_messages), limit, offset)
            return session.rank_conversations(search)

    def _embedder(self) -> Embedder:
        """The configured embedder; semantic search cannot run without one."""
        if self.config.embedder is None:
            raise ConfigurationError(
                "semantic search needs an embedder: ConversationManagerConfig(embedder=...)"
            )
        return self.config.embedder


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


def _min_score(value: object) -> float:
    """A checked similarity floor: a number from -1 to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
        raise InvalidInputError(f"min_score must be a number from -1 to 1; got {value!r}")
    return float(value)
