"""What a ranked search returns: hits with scores and snippets, and page cursors."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from convstore.errors import InvalidInputError
from convstore.models import Conversation, Message
from convstore.search.query import SearchQuery, parse_query
from convstore.search.snippets import Snippet, snippet
from convstore.validation import MAX_INT, text_values

SearchTarget = Literal["messages", "conversations"]
SearchMode = Literal["text", "semantic", "hybrid"]


@dataclass(frozen=True)
class SearchHit:
    """One result: a message (with its conversation id) or a conversation."""

    conversation_id: str
    score: float
    snippet: Snippet
    message: Message | None = None
    conversation: Conversation | None = None


@dataclass(frozen=True)
class SearchResults:
    """A page of hits, best first, and the cursor of the next page (None at the end)."""

    hits: list[SearchHit]
    next_cursor: str | None


def lenient_query(text: str) -> SearchQuery | None:
    """``text`` as a query if it parses (to mark its words in snippets), else None."""
    try:
        return parse_query(text)
    except InvalidInputError:
        return None


def message_hit(message: Message, score: float, query: SearchQuery | None) -> SearchHit:
    found = snippet(text_values(message.content), query)
    return SearchHit(message.conversation_id, score, found, message=message)


def conversation_hit(conversation: Conversation, score: float, query: SearchQuery) -> SearchHit:
    found = snippet([conversation.name, conversation.description or ""], query)
    return SearchHit(conversation.id, score, found, conversation=conversation)


def search_token(
    query: str, target: str, conversation_id: str | None, filters: Mapping[str, Any] | None
) -> str:
    """A short fingerprint of a search, so a cursor is only used with the search it came from."""
    described = json.dumps([query, target, conversation_id, filters], sort_keys=True, default=str)
    return hashlib.sha256(described.encode()).hexdigest()[:12]


def make_cursor(offset: int, token: str) -> str:
    raw = json.dumps({"offset": offset, "search": token}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str | None, token: str) -> int:
    """The offset a cursor stands for; InvalidInputError if it is not one of this search's."""
    if cursor is None:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, owner = decoded["offset"], decoded["search"]
    except (ValueError, TypeError, KeyError, UnicodeError):
        raise InvalidInputError("cursor is not a cursor returned by search") from None
    if owner != token or not isinstance(offset, int) or isinstance(offset, bool):
        raise InvalidInputError("cursor belongs to a different search")
    if not 0 <= offset <= MAX_INT:
        raise InvalidInputError("cursor is not a cursor returned by search")
    return offset
