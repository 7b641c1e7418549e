"""What every route needs: the store, the settings, the gate and the change hub, the
caller of a request, and the few steps routes share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from convstore.errors import ConversationNotFoundError, MessageNotFoundError
from convstore.events import ChangeHub
from convstore.models import Conversation, Message
from convstore.server.auth import Caller, Gate
from convstore.server.idempotency import Idempotency, IdempotentRequest, idempotent_request
from convstore.server.observability import Metrics
from convstore.server.schemas import ERRORS
from convstore.server.settings import ServerSettings
from convstore.store import ConversationStore


@dataclass
class ServerContext:
    store: ConversationStore
    settings: ServerSettings
    gate: Gate
    metrics: Metrics
    hub: ChangeHub


def context_of(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


def reader(request: Request) -> Caller:
    """The caller of a read (authenticated, within its read limit)."""
    return context_of(request).gate.admit(request, "read")


def writer(request: Request) -> Caller:
    """The caller of a write (authenticated, within its write limit)."""
    return context_of(request).gate.admit(request, "write")


def chunk_writer(request: Request) -> Caller:
    """The caller adding chunks to a streamed reply (within its chunk limit)."""
    return context_of(request).gate.admit(request, "chunk")


Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]
ChunkWriter = Annotated[Caller, Depends(chunk_writer)]
Idem = Annotated[IdempotentRequest | None, Depends(idempotent_request)]


def make_router() -> APIRouter:
    """A router of the API: under /api/v1, every error documented."""
    return APIRouter(prefix="/api/v1", responses=ERRORS)


def conversation_of(caller: Caller, conversation_id: str) -> Conversation:
    """The caller's conversation, or ConversationNotFoundError."""
    found = caller.store.get_conversation(conversation_id)
    if found is None:
        raise ConversationNotFoundError(conversation_id)
    return found


def message_of(caller: Caller, conversation_id: str, message_id: str) -> Message:
    """A message of the caller's conversation, or the not-found error that applies."""
    conversation_of(caller, conversation_id)
    found = caller.store.get_message(conversation_id, message_id)
    if found is None:
        raise MessageNotFoundError(conversation_id, message_id)
    return found


def body(value: BaseModel | Sequence[BaseModel]) -> Any:
    """A record (or a list of them) as the JSON of a response."""
    if not isinstance(value, BaseModel):
        return [item.model_dump(mode="json") for item in value]
    return value.model_dump(mode="json")


def answer(
    caller: Caller,
    request: IdempotentRequest | None,
    status: int,
    produce: Callable[[str | None], BaseModel | Sequence[BaseModel]],
) -> Response:
    """Run a write once per Idempotency-Key: ``produce`` gets the id to give a new
    resource (derived from the key, or None) and returns what to answer."""
    if request is None:
        return JSONResponse(body(produce(None)), status_code=status)
    once = Idempotency(caller.store, caller.user_id, request)
    replayed = once.replay()
    if replayed is not None:
        return replayed
    content = body(produce(once.derived_id))
    once.remember(status, content)
    return JSONResponse(content, status_code=status)
