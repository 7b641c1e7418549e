"""Content parts: the typed pieces a list of message content is made of.

A part is a JSON object whose ``type`` names its shape. The recognised shapes follow
the OpenAI Responses items closely enough that converting to and from the OpenAI and
Anthropic message formats loses nothing; keys a part does not declare are allowed and
kept, so a source's extra fields survive. Images and files are always by reference (a
URL or an attachment id), never inline bytes.

Validation only checks: the content stored is the caller's value, unchanged.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class ContentMismatchError(Exception):
    """Content that does not fit its schema: where (``path``) and why (``reason``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ContentModel(BaseModel):
    """Base of the content schemas: undeclared keys are allowed and kept."""

    model_config = ConfigDict(extra="allow")


class TextPart(ContentModel):
    """``{"type": "text", "text": ...}``: a piece of text."""

    type: Literal["text"] = "text"
    text: str


class _ByReference(ContentModel):
    """A part that points at its bytes (a URL or an attachment) instead of holding them."""

    url: str | None = None
    attachment_id: str | None = None

    @model_validator(mode="after")
    def _points_somewhere(self) -> Self:
        """Refuse a part with neither url nor attachment_id, or with inline data: the
        bytes of images and files belong in attachments, not in message rows."""
        if self.url is None and self.attachment_id is None:
            raise ValueError("url or attachment_id is required")
        if self.url is not None and self.url[:5].lower() == "data:":
            raise ValueError(
                "url holds inline data; store the bytes as an attachment and give its "
                "attachment_id (or a URL where they can be fetched)"
            )
        return self


class ImagePart(_ByReference):
    """``{"type": "image", "url" | "attachment_id", "mime_type", "detail"}``: an image by
    reference; ``detail`` is the resolution hint ("low", "high", "auto")."""

    type: Literal["image"] = "image"
    mime_type: str | None = None
    detail: str | None = None


class FilePart(_ByReference):
    """``{"type": "file", "url" | "attachment_id", "filename", "mime_type"}``: a file by
    reference."""

    type: Literal["file"] = "file"
    filename: str | None = None
    mime_type: str | None = None


class ToolCallPart(ContentModel):
    """``{"type": "tool_call", "id", "name", "arguments"}``: the model asks for a tool;
    ``arguments`` is the JSON object, or its text as the model produced it."""

    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: str | dict[str, Any]


class ToolResultPart(ContentModel):
    """``{"type": "tool_result", "tool_call_id", "content", "is_error"}``: what a tool
    returned for the call ``tool_call_id``; ``content`` is text or a list of parts."""

    type: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    content: str | list[Any]
    is_error: bool = False


class ReasoningPart(ContentModel):
    """``{"type": "reasoning", "text", "summary"}``: the model's reasoning, with the
    summary a provider may give instead of (or beside) it."""

    type: Literal["reasoning"] = "reasoning"
    text: str
    summary: str | None = None


PARTS: dict[str, type[ContentModel]] = {
    "text": TextPart,
    "image": ImagePart,
    "file": FilePart,
    "tool_call": ToolCallPart,
    "tool_result": ToolResultPart,
    "reasoning": ReasoningPart,
}
"""The recognised parts, by the value of their ``type`` key."""


class Parts:
    """Schema marker: a non-empty list whose every item is a part, either recognised (and
    checked against its shape) or of a namespaced custom type ("x-..." or "vendor/...")."""


class LooseParts:
    """Schema marker: a list whose recognised parts are checked; anything else in it
    (other objects, strings, numbers) passes as it is."""


def is_namespaced(name: str) -> bool:
    """Whether ``name`` is a custom type name: "x-something" or "vendor/something"."""
    if name.startswith("x-"):
        return len(name) > 2
    vendor, slash, rest = name.partition("/")
    return bool(slash and vendor and rest)


def check_parts(items: list[Any], *, loose: bool) -> None:
    """Check the parts of a content list; raise ContentMismatchError naming the first bad one.

    With ``loose``, items that are not recognised parts pass; without, each item must be
    an object with a ``type``, recognised or namespaced, and the list must not be empty.
    """
    if not loose and not items:
        raise ContentMismatchError("content", "must hold at least one part")
    for index, item in enumerate(items):
        kind = item.get("type") if isinstance(item, dict) else None
        model = PARTS.get(kind) if isinstance(kind, str) else None
        if model is not None:
            check_model(model, item, f"content[{index}]")
        elif not loose and not (isinstance(kind, str) and is_namespaced(kind)):
            known = ", ".join(PARTS)
            raise ContentMismatchError(
                f"content[{index}]",
                f"must be a part: an object whose type is one of {known}, "
                "or a namespaced custom type ('x-...' or 'vendor/...')",
            )


def check_model(model: type[BaseModel], value: Any, path: str) -> None:
    """Validate ``value`` strictly against ``model``; raise ContentMismatchError on failure."""
    try:
        model.model_validate(value, strict=True)
    except ValidationError as exc:
        raise mismatch(exc, value, path) from None


def mismatch(exc: ValidationError, value: Any, path: str) -> ContentMismatchError:
    """The first problem pydantic found, as a ContentMismatchError with a path into the content.

    Pydantic names the arms of a union in its error locations ("str", "dict[str,any]");
    those are not in the data, so the path follows only keys and indexes the content
    has, and the reasons given at that place by several arms are joined with "or".
    """
    errors = exc.errors(include_url=False)
    found: dict[str, list[str]] = {}
    for error in errors:
        place = _data_path(value, error["loc"], path, missing=error["type"] == "missing")
        reason = str(error["msg"]).removeprefix("Value error, ")
        reasons = found.setdefault(place, [])
        if reason not in reasons:
            reasons.append(reason)
    place, reasons = next(iter(found.items()))
    lead = "Input should be "
    if len(reasons) > 1 and all(reason.startswith(lead) for reason in reasons):
        reasons = [reasons[0], *(reason.removeprefix(lead) for reason in reasons[1:])]
    return ContentMismatchError(place, " or ".join(reasons))


def _data_path(value: Any, loc: tuple[int | str, ...], path: str, *, missing: bool) -> str:
    """The part of an error location that exists in the data, written from ``path``."""
    for index, step in enumerate(loc):
        if isinstance(value, dict) and isinstance(step, str) and step in value:
            path, value = f"{path}.{step}", value[step]
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            path, value = f"{path}[{step}]", value[step]
        elif missing and index == len(loc) - 1 and isinstance(step, str):
            return f"{path}.{step}"
        else:
            continue  # a union arm's name, not a place in the data
    return path
