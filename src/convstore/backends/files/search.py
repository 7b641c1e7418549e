"""Full-text search on the files backend: the conversations' terms, matched and ranked in
Python with the same bm25 and weights the SQL backends use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from convstore.backends.files.loaded import LoadedConversation
from convstore.backends.files.query import message_matches
from convstore.models import Conversation, Message
from convstore.queries import ConversationSearch, MessageSearch
from convstore.search.ranking import RANK_WINDOW, bm25
from convstore.search.text import index_text

# what a match in a name or a description counts, against 1 for a match in a message
# (the weights the SQL backends give bm25)
_NAME_WEIGHT = 4.0
_DESCRIPTION_WEIGHT = 2.0


def rank_messages(
    states: Iterable[LoadedConversation], search: MessageSearch
) -> list[tuple[Message, float]]:
    """The requested page of the messages of ``states`` that match, best first."""
    found: list[Message] = []
    documents: list[list[str]] = []
    for state in states:
        for message in state.ordered():
            terms, singles = state.terms(message)
            if message_matches(message, search.where) and search.query.matches_terms(
                terms, singles
            ):
                found.append(message)
                documents.append(terms)
    if len(found) > RANK_WINDOW:  # only the newest matches are ranked, as in SQL
        newest = sorted(range(len(found)), key=lambda i: (found[i].created_at, found[i].id))
        kept = sorted(newest[-RANK_WINDOW:])
        found, documents = [found[i] for i in kept], [documents[i] for i in kept]
    return _best(list(zip(found, bm25(documents, search.query), strict=True)), search)


def rank_conversations(
    listed: list[Conversation],
    search: ConversationSearch,
    in_messages: Iterable[tuple[Message, float]],
) -> list[tuple[Conversation, float]]:
    """The requested page of ``listed`` (the conversations the filter lets through), best
    first: scored by name and description, or by their best message in ``in_messages``
    where that scores higher."""
    best: dict[str, float] = {}
    named = [c for c in listed if search.query.matches([c.name, c.description or ""])]
    names = bm25([index_text([c.name]).terms.split() for c in named], search.query)
    descriptions = bm25(
        [index_text([c.description or ""]).terms.split() for c in named], search.query
    )
    for conversation, name, description in zip(named, names, descriptions, strict=True):
        best[conversation.id] = _NAME_WEIGHT * name + _DESCRIPTION_WEIGHT * description
    for message, score in in_messages:
        best[message.conversation_id] = max(best.get(message.conversation_id, 0), score)
    by_id = {c.id: c for c in listed}
    return _best([(by_id[cid], score) for cid, score in best.items()], search)


def words_containing(
    states: Iterable[LoadedConversation],
    conversations: Iterable[Conversation],
    fragment: str,
    limit: int,
) -> list[str]:
    """The shortest words of messages, names and descriptions that contain ``fragment``."""
    words: set[str] = set()
    for state in states:
        for message in state.ordered():
            words.update(t for t in state.terms(message)[0] if fragment in t)
    for conversation in conversations:
        texts = [conversation.name, conversation.description or ""]
        words.update(t for t in index_text(texts).terms.split() if fragment in t)
    return sorted(words, key=lambda word: (len(word), word))[:limit]


def _best(
    scored: list[tuple[Any, float]], search: MessageSearch | ConversationSearch
) -> list[tuple[Any, float]]:
    """The requested page of ``scored``, best first (ties by id, as the SQL backends)."""
    scored.sort(key=lambda pair: (-pair[1], pair[0].id))
    end = None if search.limit is None else search.offset + search.limit
    return scored[search.offset : end]
