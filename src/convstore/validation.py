"""Checks on everything a caller hands the store, done before any I/O.

Each check raises InvalidInputError with a message that names the field and says what
was wrong, so that bad input changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from convstore.errors import InvalidInputError
from convstore.models import MessageStatus, Role, Usage

MAX_JSON_DEPTH = 100
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
    _check_encodable(value, field)
    return value


def check_metadata(value: object, field: str = "metadata") -> dict[str, Any]:
    """A JSON object given as metadata; None means empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{field} must be a dict or None, not {type(value).__name__}")
    _check_json(value, field, 0)
    return value


def encode_content(value: object, max_bytes: int) -> str:
    """The JSON text of message content after checking it.

    Content must be a str, dict or list made only of JSON values: dicts with string
    keys, lists, strings, finite numbers, booleans and None. Anything else (tuples,
    sets, NaN, objects) would not come back as it went in, so it is refused.
    """
    if not isinstance(value, str | dict | list):
        raise InvalidInputError(f"content must be a str, dict or list, not {type(value).__name__}")
    _check_json(value, "content", 0)
    text = dump_json(value)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidInputError(
            f"content is {size} bytes as JSON; the limit (max_message_size) is {max_bytes}"
        )
    return text


def check_usage(value: object) -> Usage | None:
    """Token usage as a Usage, from a Usage or a mapping of its fields."""
    if value is None or isinstance(value, Usage):
        return value
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"usage must be a dict or None, not {type(value).__name__}")
    unknown = set(value) - set(Usage.model_fields)
    if unknown:
        raise InvalidInputError(f"usage has unknown fields: {', '.join(sorted(map(str, unknown)))}")
    for key in ("prompt_tokens", "completion_tokens"):
        tokens = value.get(key, 0)
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise InvalidInputError(f"usage.{key} must be a non-negative integer")
    model = value.get("model")
    if model is not None:
        check_text(model, "usage.model", MAX_NAME_LENGTH)
    return Usage(**value)


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


def _check_json(value: object, path: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidInputError(f"{path} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        _check_encodable(value, path)
    elif value is None or isinstance(value, bool | int):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{path} holds {value!r}, which is not valid JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"{path} has a key {_shorten(repr(key))} of type {type(key).__name__}; "
                    "JSON object keys must be strings"
                )
            _check_encodable(key, path)
            _check_json(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
    else:
        raise InvalidInputError(
            f"{path} holds a {type(value).__name__}, which is not JSON-serializable "
            "(use str, int, float, bool, None, list and dict)"
        )


def _check_encodable(value: str, field: str) -> None:
    """Text every backend can store: valid UTF-8, and no NUL character (which
    PostgreSQL's text and JSONB cannot hold)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{field} contains a lone surrogate and is not valid text") from exc
    if "\x00" in value:
        raise InvalidInputError(f"{field} contains a NUL character (U+0000), which is not stored")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
