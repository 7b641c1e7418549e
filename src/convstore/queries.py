"""What a read asks for: filters, pages and searches, parsed and checked once.

The store turns the caller's ``filters`` dict into these frozen objects; backends only
translate them into their own query language, so the rules live here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from convstore.errors import InvalidInputError
from convstore.ids import check_id
from convstore.models import Message, MessageStatus, Role
from convstore.search.query import SearchQuery
from convstore.validation import (
    MIN_INT,
    check_int,
    check_role,
    check_seconds,
    check_status,
    check_text,
)

MAX_PAGE_SIZE = 10_000
MAX_FILTER_TEXT = 100_000  # characters of a metadata value a filter compares with
_METADATA_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}")

ConversationOrder = Literal["updated_at", "created_at", "name"]


@dataclass(frozen=True)
class TimeRange:
    """``after < t <= before``, each bound optional (epoch seconds)."""

    after: float | None = None
    before: float | None = None


@dataclass(frozen=True)
class MetadataEquals:
    """metadata at ``path`` (keys of nested objects) equals ``value``."""

    path: tuple[str, ...]
    value: str | int | float | bool | None


@dataclass(frozen=True)
class ConversationFilter:
    owner_id: str | None = None
    conversation_ids: tuple[str, ...] | None = None
    created: TimeRange = field(default_factory=TimeRange)
    updated: TimeRange = field(default_factory=TimeRange)
    metadata: tuple[MetadataEquals, ...] = ()


@dataclass(frozen=True)
class MessageFilter:
    owner_id: str | None = None  # set by a store opened for one user, not by callers
    conversation_ids: tuple[str, ...] | None = None
    roles: tuple[Role, ...] | None = None
    statuses: tuple[MessageStatus, ...] | None = None
    created: TimeRange = field(default_factory=TimeRange)
    metadata: tuple[MetadataEquals, ...] = ()


@dataclass(frozen=True)
class ConversationQuery:
    """A page of conversations."""

    where: ConversationFilter = field(default_factory=ConversationFilter)
    order_by: ConversationOrder = "updated_at"
    descending: bool = True
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True)
class BranchPage:
    """A page of a conversation's active branch, by offset or by seq cursor."""

    limit: int | None = None
    offset: int = 0
    before_seq: int | None = None
    after_seq: int | None = None
    newest_first: bool = False


@dataclass(frozen=True)
class MessageSearch:
    """Messages that match ``query``, best first."""

    query: SearchQuery
    where: MessageFilter = field(default_factory=MessageFilter)
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True)
class ConversationSearch:
    """Conversations whose name or description (and, with ``in_messages``, whose
    messages) match ``query``, best first."""

    query: SearchQuery
    where: ConversationFilter = field(default_factory=ConversationFilter)
    in_messages: bool = True
    limit: int | None = None
    offset: int = 0


def page_of(messages: Sequence[Message], page: BranchPage) -> list[Message]:
    """Apply ``page`` to messages already in seq order, as a backend query would."""
    selected = [
        m
        for m in messages
        if (page.before_seq is None or m.seq < page.before_seq)
        and (page.after_seq is None or m.seq > page.after_seq)
    ]
    if page.newest_first:
        selected.reverse()
    end = None if page.limit is None else page.offset + page.limit
    return selected[page.offset : end]


CONVERSATION_FILTER_KEYS = (
    "owner_id",
    "conversation_ids",
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
    "metadata",
)
MESSAGE_FILTER_KEYS = (
    "conversation_ids",
    "role",
    "status",
    "created_after",
    "created_before",
    "metadata",
)


def parse_conversation_filter(filters: Mapping[str, Any] | None) -> ConversationFilter:
    """Check and parse the filters dict of list/search_conversations."""
    values = _known(filters, CONVERSATION_FILTER_KEYS, "conversation")
    owner = values.get("owner_id")
    return ConversationFilter(
        owner_id=None if owner is None else check_id(owner, "filters.owner_id"),
        conversation_ids=_ids(values.get("conversation_ids")),
        created=_range(values, "created"),
        updated=_range(values, "updated"),
        metadata=_metadata(values.get("metadata")),
    )


def parse_message_filter(filters: Mapping[str, Any] | None) -> MessageFilter:
    """Check and parse the filters dict of search_messages."""
    values = _known(filters, MESSAGE_FILTER_KEYS, "message")
    roles = _one_or_many(values.get("role"))
    statuses = _one_or_many(values.get("status"))
    return MessageFilter(
        conversation_ids=_ids(values.get("conversation_ids")),
        roles=None if roles is None else tuple(check_role(r) for r in roles),
        statuses=None if statuses is None else tuple(check_status(s) for s in statuses),
        created=_range(values, "created"),
        metadata=_metadata(values.get("metadata")),
    )


def check_page(limit: object, offset: object) -> tuple[int | None, int]:
    """Validated ``limit`` (None = all, at most MAX_PAGE_SIZE otherwise) and ``offset``
    (at most MAX_INT, what a backend can skip)."""
    if limit is not None and (not _is_int(limit) or not 0 <= limit <= MAX_PAGE_SIZE):  # type: ignore[operator]
        raise InvalidInputError(
            f"limit must be None or an integer from 0 to {MAX_PAGE_SIZE}; got {limit!r}"
        )
    return limit, check_int(offset, "offset")  # type: ignore[return-value]


def check_seq(value: object, name: str) -> int | None:
    """A seq cursor: None or an integer from 0 to MAX_INT."""
    return check_int(value, name, optional=True)  # type: ignore[no-any-return]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _known(
    filters: Mapping[str, Any] | None, keys: tuple[str, ...], kind: str
) -> Mapping[str, Any]:
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a dict or None, not {type(filters).__name__}")
    unknown = sorted(str(k) for k in filters if k not in keys)
    if unknown:
        raise InvalidInputError(
            f"unknown {kind} filter keys: {', '.join(unknown)} (known: {', '.join(keys)})"
        )
    return {k: v for k, v in filters.items() if v is not None}


def _ids(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise InvalidInputError("filters.conversation_ids must be a list of ids")
    return tuple(check_id(v, "filters.conversation_ids item") for v in value)


def _one_or_many(value: object) -> tuple[object, ...] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(value)
    return (value,)


def _range(values: Mapping[str, Any], prefix: str) -> TimeRange:
    bounds: dict[str, float | None] = {}
    for side in ("after", "before"):
        key = f"{prefix}_{side}"
        bounds[side] = check_seconds(values.get(key), f"filters.{key}", optional=True)
    return TimeRange(**bounds)


def _metadata(value: object) -> tuple[MetadataEquals, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise InvalidInputError("filters.metadata must be a dict of key -> value")
    conditions = []
    for key, expected in value.items():
        if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
            raise InvalidInputError(
                f"filters.metadata key {key!r} is invalid: use dotted names of "
                "A-Z, a-z, 0-9, _ and - (at most 8 levels)"
            )
        if expected is not None and not isinstance(expected, str | int | float | bool):
            raise InvalidInputError(
                f"filters.metadata[{key!r}] must be a string, number, boolean or None"
            )
        _check_filter_value(expected, f"filters.metadata[{key!r}]")
        conditions.append(MetadataEquals(tuple(key.split(".")), expected))
    return tuple(conditions)


def _check_filter_value(value: object, field: str) -> None:
    """A value compared with stored metadata must be storable itself: text valid, an
    integer 64-bit, a float finite."""
    if isinstance(value, str):
        check_text(value, field, MAX_FILTER_TEXT)
    elif isinstance(value, int) and not isinstance(value, bool):
        check_int(value, field, low=MIN_INT)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"{field} must be a finite number; got {value!r}")
