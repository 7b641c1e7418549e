"""Checks on everything a caller hands the store, done before any I/O.

Each check raises InvalidInputError with a message that names the field and says what
was wrong, so that bad input changes nothing.

One rule for every backend: whatever one backend stores, every other can hold and
give back as it was, so that a store can always be exported, backed up and moved.
Text is valid Unicode without NUL (PostgreSQL's text cannot hold U+0000, and a lone
surrogate cannot be written as UTF-8 at all); integers are 64-bit (PostgreSQL's
bigint, SQLite's INTEGER, and the largest integer SQLite's JSON functions read
exactly); JSON values are plain JSON of bounded depth, key length and size. Checking a
value costs time linear in its size: the place of a problem is worked out only once
there is one.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from convstore.errors import InvalidInputError
from convstore.models import Conversation, MessageStatus, Role, Usage

MAX_INT = 2**63 - 1  # the largest integer stored anywhere (token counts, JSON numbers)
MIN_INT = -(2**63)  # the smallest integer inside JSON values
MAX_COUNTER = 2**31 - 1  # seq, version and message count (PostgreSQL integer columns)
MAX_JSON_DEPTH = 100  # levels of nested objects and arrays in one JSON value
MAX_JSON_KEY_LENGTH = 1_024  # characters in one key of a JSON object
MAX_JSON_ITEMS = 100_000  # members of all the objects and arrays of one JSON value
NOTE_ROOM = 1  # members kept free in metadata for the note the store adds to a message
MAX_NAME_LENGTH = 1_000
MAX_DESCRIPTION_LENGTH = 100_000
MAX_TYPE_LENGTH = 64

_ROLES = {role.value: role for role in Role}
_STATUSES = {status.value: status for status in MessageStatus}


def check_role(value: object) -> Role:
    """The Role named by ``value`` ("system", "user", "assistant" or "tool")."""
    role = _ROLES.get(value) if isinstance(value, str) else None
    if role is None:
        raise InvalidInputError(
            f"role must be one of {', '.join(_ROLES)}; got {_shorten(repr(value))}"
        )
    return role


def check_status(value: object) -> MessageStatus:
    """The MessageStatus named by ``value``."""
    status = _STATUSES.get(value) if isinstance(value, str) else None
    if status is None:
        raise InvalidInputError(
            f"status must be one of {', '.join(_STATUSES)}; got {_shorten(repr(value))}"
        )
    return status


def check_text(value: object, field: str, max_length: int, *, optional: bool = False) -> Any:
    """``value`` if it is a string of at most ``max_length`` characters (or None if optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        kind = "a string or None" if optional else "a string"
        raise InvalidInputError(f"{field} must be {kind}, not {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidInputError(
            f"{field} is {len(value)} characters long; the limit is {max_length}"
        )
    problem = _text_problem(value)
    if problem is not None:
        raise InvalidInputError(f"{field} {problem}")
    return value


def check_int(
    value: object, field: str, *, low: int = 0, high: int = MAX_INT, optional: bool = False
) -> Any:
    """``value`` if it is an integer (not a bool) from ``low`` to ``high`` (or None if
    optional); the default range is what every backend stores."""
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        kind = "None or an integer" if optional else "an integer"
        raise InvalidInputError(
            f"{field} must be {kind} from {low} to {high}; got {_shorten(repr(value))}"
        )
    return value


def check_seconds(
    value: object, field: str, *, optional: bool = False, positive: bool = False
) -> Any:
    """``value`` as a float if it is a finite number of seconds (epoch seconds, or a
    positive duration if ``positive``), or None if optional: every backend stores a
    finite float, and only some an infinity or a NaN."""
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not abs(value) <= sys.float_info.max  # NaN, the infinities, huge ints
        or (positive and not value > 0)
    ):
        kind = "a positive number" if positive else "epoch seconds"
        raise InvalidInputError(
            f"{field} must be {'None or ' if optional else ''}{kind} (finite); "
            f"got {_shorten(repr(value))}"
        )
    return float(value)


def check_metadata(
    value: object, field: str = "metadata", *, room: int = NOTE_ROOM
) -> dict[str, Any]:
    """A JSON object given as metadata; None means empty. ``room`` members are kept free
    for the note the store adds when a stream ends (its finish_reason or error), so that
    what it stores is within MAX_JSON_ITEMS, as an import of it checks (with no room)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{field} must be a dict or None, not {type(value).__name__}")
    check_json(value, field, members=MAX_JSON_ITEMS - room)
    return value


def encode_content(value: object, max_bytes: int) -> str:
    """The JSON text of message content after checking it.

    Content must be a str, dict or list made only of JSON values: dicts with string
    keys, lists, strings, finite numbers, booleans and None. Anything else (tuples,
    sets, NaN, objects) would not come back as it went in, so it is refused.
    """
    if not isinstance(value, str | dict | list):
        raise InvalidInputError(f"content must be a str, dict or list, not {type(value).__name__}")
    check_json(value, "content")
    text = dump_json(value)
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise InvalidInputError(
            f"content is {size} bytes as JSON; the limit (max_message_size) is {max_bytes}"
        )
    return text


def check_usage(value: object) -> Usage | None:
    """Token usage as a Usage, from a Usage or a mapping of its fields; a Usage is
    checked too, since a model does not bound its numbers nor check its text."""
    if value is None:
        return None
    fields = value.model_dump() if isinstance(value, Usage) else value
    if not isinstance(fields, Mapping):
        raise InvalidInputError(f"usage must be a dict or None, not {type(value).__name__}")
    unknown = set(fields) - set(Usage.model_fields)
    if unknown:
        raise InvalidInputError(f"usage has unknown fields: {', '.join(sorted(map(str, unknown)))}")
    for key in ("prompt_tokens", "completion_tokens"):
        check_int(fields.get(key, 0), f"usage.{key}")
    model = fields.get("model")
    if model is not None:
        check_text(model, "usage.model", MAX_NAME_LENGTH)
    return value if isinstance(value, Usage) else Usage(**fields)


def token_totals(conversation: Conversation, usages: Iterable[Usage]) -> dict[str, int]:
    """The conversation's token totals with ``usages`` added, checked before anything is
    written: each count is at most MAX_INT, but their sum must be one too."""
    totals = {"prompt_tokens": conversation.prompt_tokens}
    totals["completion_tokens"] = conversation.completion_tokens
    for usage in usages:
        totals["prompt_tokens"] += usage.prompt_tokens
        totals["completion_tokens"] += usage.completion_tokens
    for field, total in totals.items():
        if total > MAX_INT:
            raise InvalidInputError(
                f"this usage would take the conversation's {field} past {MAX_INT}"
            )
    return totals


def dump_json(value: object) -> str:
    """Compact JSON text, non-ASCII kept as is (the stored form of content)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def text_values(content: object) -> Iterator[str]:
    """The strings inside content, in order: what search looks at (keys are skipped)."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, dict):
        for item in content.values():
            yield from text_values(item)
    elif isinstance(content, list):
        for item in content:
            yield from text_values(item)


def check_json(value: object, field: str, *, members: int = MAX_JSON_ITEMS) -> None:
    """Refuse ``value`` unless it is plain JSON every backend stores and gives back as it
    is: objects with string keys, arrays, valid text, 64-bit integers, finite floats,
    booleans and None, within MAX_JSON_DEPTH, MAX_JSON_KEY_LENGTH and ``members``.

    One pass that only looks at each value (no path is built as it goes), so the cost
    is linear however long the keys or deep the nesting; the place of a problem is
    worked out from the containers it is in, once there is one to report.
    """
    top = [value]
    try:
        _members(top, 0, [members])
    except _RefusedError as refused:
        if refused.culprit is None:  # too many members: a problem of the whole value
            raise InvalidInputError(f"{field} has more than {members} members in all") from None
        chain = [*reversed(refused.containers), refused.culprit]
        where = _place(chain[1:])  # less the list of one it started from
        raise InvalidInputError(f"{field}{where} {refused.problem}") from None


class _RefusedError(Exception):
    """A problem with ``culprit``, a member of the innermost of ``containers`` (None for
    a problem of the value as a whole); the containers are gathered, innermost first,
    as the walk unwinds."""

    def __init__(self, culprit: object, problem: str) -> None:
        super().__init__(problem)
        self.culprit = culprit
        self.problem = problem
        self.containers: list[Any] = []


def _members(container: list[Any] | dict[str, Any], depth: int, left: list[int]) -> None:
    """Check the members of ``container`` (at ``depth``), and theirs, depth first;
    ``left`` holds how many more members the whole value may have. One function with
    the checks written out: this loop is where the time goes."""
    finite = math.isfinite
    try:
        for item in container.values() if isinstance(container, dict) else container:
            kind = type(item)
            if kind is str:
                if not item.isascii():
                    try:
                        item.encode()
                    except UnicodeEncodeError:
                        raise _RefusedError(item, _SURROGATE) from None
                if "\x00" in item:
                    raise _RefusedError(item, _NUL)
            elif kind is int:
                if not MIN_INT <= item <= MAX_INT:
                    raise _RefusedError(item, _INT_PROBLEM)
            elif kind is float:
                if not finite(item):
                    raise _RefusedError(item, f"holds {item!r}, which is not valid JSON")
            elif item is None or kind is bool:
                pass
            elif (kind is list or kind is dict or _is_container(item)) and item:
                if depth >= MAX_JSON_DEPTH:
                    raise _RefusedError(item, f"is nested more than {MAX_JSON_DEPTH} levels deep")
                left[0] -= len(item)
                if left[0] < 0:
                    raise _RefusedError(None, "too many members")
                if isinstance(item, dict):
                    _check_keys(item)
                elif len(item) > 16 and _plain_list(item):
                    continue  # checked as a whole: nothing inside to look at one by one
                _members(item, depth + 1, left)
    except _RefusedError as refused:
        refused.containers.append(container)
        raise


def _plain_list(items: list[Any]) -> bool:
    """Whether ``items`` are scalars of one type that pass when checked together, at C
    speed (a vector of floats, a list of token ids, of words); False means: look at
    them one by one, which also finds the place of a problem."""
    kinds = set(map(type, items))
    if len(kinds) != 1:
        return False
    kind = kinds.pop()
    if kind is int:
        return bool(min(items) >= MIN_INT and max(items) <= MAX_INT)
    if kind is float:
        return all(map(math.isfinite, items))
    if kind is str:
        return _text_problem("".join(items)) is None
    return kind is bool or kind is type(None)


def _is_container(item: object) -> bool:
    """Whether ``item``, of no JSON type itself, is a subclass of dict or list (walked as
    one); a subclass of a JSON scalar is checked as its base; anything else is refused."""
    if isinstance(item, dict | list):
        return True
    if isinstance(item, str):
        _check_string(item)
    elif isinstance(item, int) and not isinstance(item, bool):
        if not MIN_INT <= item <= MAX_INT:
            raise _RefusedError(item, _INT_PROBLEM)
    elif isinstance(item, float):
        if not math.isfinite(item):
            raise _RefusedError(item, f"holds {item!r}, which is not valid JSON")
    else:
        raise _RefusedError(
            item,
            f"holds a {type(item).__name__}, which is not JSON-serializable "
            "(use str, int, float, bool, None, list and dict)",
        )
    return False


_INT_PROBLEM = f"holds an integer outside {MIN_INT}..{MAX_INT}, which is not stored"


def _check_string(value: str) -> None:
    problem = _text_problem(value)
    if problem is not None:
        raise _RefusedError(value, problem)


def _check_keys(value: dict[Any, Any]) -> None:
    """Refuse a dict whose keys are not all short, valid strings."""
    for key in value:
        if (
            type(key) is str
            and len(key) <= MAX_JSON_KEY_LENGTH
            and key.isascii()
            and "\x00" not in key
        ):
            continue
        if not isinstance(key, str):
            raise _RefusedError(
                value,
                f"has a key {_shorten(repr(key))} of type {type(key).__name__}; "
                "JSON object keys must be strings",
            )
        if len(key) > MAX_JSON_KEY_LENGTH:
            raise _RefusedError(
                value,
                f"has a key {len(key)} characters long; the limit is {MAX_JSON_KEY_LENGTH}",
            )
        problem = _text_problem(key)
        if problem is not None:
            raise _RefusedError(value, f"has a key that {problem}")


def _place(chain: list[Any]) -> str:
    """``.key[3].other``: the way from the first of ``chain`` (the value checked) to its
    last, each a member of the one before; members are found by identity. A long way
    is cut to its end."""
    steps = []
    for container, member in itertools.pairwise(chain):
        if isinstance(container, dict):
            key = next((k for k, v in container.items() if v is member), "?")
            steps.append(f".{_shorten(str(key), 40)}")
        else:
            index = next((i for i, v in enumerate(container) if v is member), "?")
            steps.append(f"[{index}]")
    kept, length = len(steps), 0
    while kept and length + len(steps[kept - 1]) <= 200:
        kept -= 1
        length += len(steps[kept])
    return ("..." if kept else "") + "".join(steps[kept:])


def _text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on every backend, or None if it can: it
    must be valid UTF-8 and hold no NUL character (PostgreSQL's text and JSON cannot)."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return _SURROGATE
    return _NUL if "\x00" in value else None


_SURROGATE = "contains a lone surrogate and is not valid text"
_NUL = "contains a NUL character (U+0000), which is not stored"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
