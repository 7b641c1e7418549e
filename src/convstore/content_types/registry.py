"""The message-type registry: one table from type name to content schema.

A message of a registered type is checked against its schema when it is written;
messages already stored are never checked again on reading. A type that is not
registered is allowed only when namespaced ("x-..." or "vendor/..."), and then its
content is not checked. :func:`register_message_type` adds a type (a namespaced one
becomes checked from then on).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, PydanticSchemaGenerationError, TypeAdapter, ValidationError

from convstore.content_types.parts import (
    ContentMismatchError,
    LooseParts,
    Parts,
    check_parts,
    is_namespaced,
    mismatch,
)
from convstore.content_types.schemas import BUILT_IN_TYPES
from convstore.errors import InvalidInputError

Check = Callable[[Any], None]
_KINDS: dict[type, str] = {str: "a string", dict: "an object", list: "a list"}


@dataclass(frozen=True)
class MessageType:
    """A registered message type: its ``schema``, and the checks made from it, one per
    JSON kind of content (str, dict, list) the schema accepts."""

    name: str
    schema: Any
    checks: dict[type, Check]

    def check(self, content: Any) -> None:
        """Raise ContentMismatchError unless ``content`` (already known to be JSON) fits."""
        kind = next(kind for kind in _KINDS if isinstance(content, kind))
        check = self.checks.get(kind)
        if check is None:
            accepted = " or ".join(_KINDS[kind] for kind in self.checks)
            raise ContentMismatchError("content", f"must be {accepted}, not {_KINDS[kind]}")
        check(content)


MESSAGE_TYPES: dict[str, MessageType] = {}
"""Every registered message type, by name: the built-in ones and those added since."""


def register_message_type(name: str, schema: Any, *, replace: bool = False) -> MessageType:
    """Register (or, with ``replace``, redefine) the message type ``name``.

    ``schema`` describes the content: a pydantic model (the content is an object of that
    shape), ``str``, a list type such as ``list[MyItem]``, the markers
    :class:`~convstore.content_types.Parts` and
    :class:`~convstore.content_types.LooseParts`, or a union of these with at most one
    arm per JSON kind (e.g. ``str | MyModel``). Values are checked strictly (no
    coercion: "1" is not an int) and are stored as given.
    """
    if not isinstance(name, str) or not name or len(name) > 64 or name != name.strip():
        raise InvalidInputError(f"a message type name must be 1 to 64 characters; got {name!r}")
    if name in MESSAGE_TYPES and not replace:
        raise InvalidInputError(
            f"message type {name!r} is already registered; pass replace=True to redefine it"
        )
    registered = MessageType(name, schema, _checks(schema))
    MESSAGE_TYPES[name] = registered
    return registered


def check_content(type_name: str, content: Any) -> None:
    """Raise InvalidInputError unless ``content`` fits the message type ``type_name``.

    ``content`` must already be checked as JSON. Plain text is the common case and
    costs one comparison; an unregistered namespaced type is not checked; any other
    unregistered type is refused with the list of known ones.
    """
    if type_name == "text" and type(content) is str:
        return
    registered = MESSAGE_TYPES.get(type_name)
    if registered is None:
        if is_namespaced(type_name):
            return
        raise InvalidInputError(
            f"type {type_name!r} is not a known message type; the known types are "
            f"{', '.join(MESSAGE_TYPES)}, and custom types must be namespaced "
            "('x-...' or 'vendor/...')"
        )
    try:
        registered.check(content)
    except ContentMismatchError as exc:
        raise InvalidInputError(
            f"content does not fit message type {type_name!r}: {exc.path}: {exc.reason}"
        ) from None


def _checks(schema: Any) -> dict[type, Check]:
    """One check per JSON kind the schema accepts, from the arms of its union."""
    arms = typing.get_args(schema) if _is_union(schema) else (schema,)
    checks: dict[type, Check] = {}
    for arm in arms:
        kind = _kind(arm)
        if kind in checks:
            raise InvalidInputError(
                f"schema {schema!r} has several arms for {_KINDS[kind]} content; "
                "give one arm per kind (a string, an object, a list)"
            )
        checks[kind] = _arm_check(arm)
    return checks


def _is_union(schema: Any) -> bool:
    return isinstance(schema, types.UnionType) or typing.get_origin(schema) is typing.Union


def _kind(arm: Any) -> type:
    """The JSON kind (str, dict or list) content must have to be checked by ``arm``."""
    bare = typing.get_args(arm)[0] if typing.get_origin(arm) is Annotated else arm
    bare = typing.get_origin(bare) or bare
    if bare in (Parts, LooseParts):
        return list
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return dict
    if bare in (str, dict, list):
        return typing.cast(type, bare)
    raise InvalidInputError(
        f"schema arm {arm!r} is not a string, object or list type; message content "
        "is always one of those"
    )


def _arm_check(arm: Any) -> Check:
    """The check of content of the arm's kind."""
    if arm is Parts or arm is LooseParts:
        loose = arm is LooseParts
        return lambda content: check_parts(content, loose=loose)
    if arm is str or arm == dict[str, Any] or arm is dict:
        return _accept  # JSON of that kind is all the arm asks for
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(arm)
    except PydanticSchemaGenerationError as exc:
        raise InvalidInputError(f"schema arm {arm!r} is not a pydantic type: {exc}") from None

    def check(content: Any) -> None:
        try:
            adapter.validate_python(content, strict=True)
        except ValidationError as exc:
            raise mismatch(exc, content, "content") from None

    return check


def _accept(content: Any) -> None:
    """Accept the content as it is."""


for _name, _schema in BUILT_IN_TYPES.items():
    register_message_type(_name, _schema)
