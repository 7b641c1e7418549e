"""The REST resources under /api/v1: conversations and search (messages and streamed
replies are in server.messages, events in server.sse).

Routes only translate between HTTP and store calls; every rule (ownership included)
is the store's. Handlers are plain functions, run by FastAPI in its thread pool.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from fastapi import Query, Response
from fastapi.responses import JSONResponse

from convstore.errors import ConcurrencyError, ConversationNotFoundError
from convstore.models import Conversation
from convstore.server.context import (
    Idem,
    Reader,
    Writer,
    answer,
    body,
    conversation_of,
    make_router,
)
from convstore.server.errors import ApiError
from convstore.server.schemas import (
    ID_PATTERN,
    MAX_INT,
    MAX_PAGE_SIZE,
    ConversationId,
    ConversationIn,
    ConversationMetadata,
    ConversationPage,
    ConversationPatch,
    Cursor,
    PageSize,
    SearchHit,
    SearchPage,
    Snippet,
    StateIn,
    Time,
)

MAX_QUERY_LENGTH = 1000
_MAX_OFFSET = MAX_INT - MAX_PAGE_SIZE - 1  # so that the offset of the next page fits too
router = make_router()

# conversations ----------------------------------------------------------------------


@router.post("/conversations", status_code=201, response_model=Conversation)
def create_conversation(payload: ConversationIn, caller: Writer, idem: Idem) -> Response:
    def create(derived: str | None) -> Conversation:
        wanted = payload.conversation_id or derived
        try:
            return caller.store.create_conversation(
                payload.name,
                description=payload.description,
                metadata=payload.metadata,
                conversation_id=wanted,
                initial_messages=[m.to_new() for m in payload.messages],
            )
        except ConcurrencyError:
            if wanted is None or wanted != derived:
                raise
            existing = caller.store.get_conversation(wanted)
            if existing is None:  # the id is taken by another user's conversation
                raise
            return existing  # this very request ran before

    return answer(caller, idem, 201, create)


@router.get("/conversations", response_model=ConversationPage)
def list_conversations(
    caller: Reader,
    limit: PageSize = 50,
    cursor: Cursor = None,
    order_by: Literal["updated_at", "created_at", "name"] = "updated_at",
    descending: bool = True,
    created_after: Time = None,
    created_before: Time = None,
    updated_after: Time = None,
    updated_before: Time = None,
) -> Response:
    offset = _offset(cursor)
    filters = {
        "created_after": created_after,
        "created_before": created_before,
        "updated_after": updated_after,
        "updated_before": updated_before,
    }
    found = caller.store.list_conversations(
        limit=limit + 1,
        offset=offset,
        filters=filters,
        order_by=order_by,
        descending=descending,
    )
    following = _cursor(offset + limit) if len(found) > limit else None
    return JSONResponse({"items": body(found[:limit]), "next_cursor": following})


@router.get("/conversations/{conversation_id}", response_model=Conversation)
def get_conversation(conversation_id: ConversationId, caller: Reader) -> Response:
    return JSONResponse(body(conversation_of(caller, conversation_id)))


@router.get("/conversations/{conversation_id}/metadata", response_model=ConversationMetadata)
def conversation_metadata(conversation_id: ConversationId, caller: Reader) -> Response:
    c = conversation_of(caller, conversation_id)
    fields = ConversationMetadata.model_fields
    return JSONResponse({name: getattr(c, name) for name in fields})


@router.patch("/conversations/{conversation_id}", response_model=Conversation)
def update_conversation(
    conversation_id: ConversationId, payload: ConversationPatch, caller: Writer
) -> Response:
    updated = caller.store.update_conversation(
        conversation_id,
        name=payload.name,
        description=payload.description,
        metadata=payload.metadata,
    )
    if updated is None:
        raise ConversationNotFoundError(conversation_id)
    return JSONResponse(body(updated))


@router.delete("/conversations/{conversation_id}", status_code=204)
def delete_conversation(
    conversation_id: ConversationId, caller: Writer, hard: bool = False
) -> Response:
    if not caller.store.delete_conversation(conversation_id, soft=not hard):
        raise ConversationNotFoundError(conversation_id)
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/restore", response_model=Conversation)
def restore_conversation(conversation_id: ConversationId, caller: Writer) -> Response:
    return JSONResponse(body(caller.store.restore_conversation(conversation_id)))


@router.put("/conversations/{conversation_id}/state", response_model=Conversation)
def set_state(conversation_id: ConversationId, payload: StateIn, caller: Writer) -> Response:
    moved = caller.store.set_state(
        conversation_id,
        payload.state,
        details=payload.details,
        expected_version=payload.expected_version,
    )
    return JSONResponse(body(moved))


# search -------------------------------------------------------------------------------


@router.get("/search", response_model=SearchPage)
def search(
    caller: Reader,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_LENGTH)],
    target: Literal["messages", "conversations"] = "messages",
    mode: Literal["text", "semantic", "hybrid"] = "text",
    conversation_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: PageSize = 20,
    cursor: Cursor = None,
) -> Response:
    """Ranked hits, best first, as ``store.search`` returns them: ``hits`` and the
    ``next_cursor`` of the next page (None at the end)."""
    results = caller.store.search(
        q,
        target=target,
        mode=mode,
        conversation_id=conversation_id,
        limit=limit,
        cursor=cursor,
    )
    hits = [
        SearchHit(
            conversation_id=hit.conversation_id,
            score=hit.score,
            snippet=Snippet(text=hit.snippet.text, highlights=list(hit.snippet.highlights)),
            message=hit.message,
            conversation=hit.conversation,
        )
        for hit in results.hits
    ]
    return JSONResponse({"hits": body(hits), "next_cursor": results.next_cursor})


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    """The position a conversation-list cursor stands for."""
    if cursor is None:
        return 0
    try:
        decoded: Any = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = decoded["o"]
    except (ValueError, TypeError, KeyError):
        raise ApiError(422, "INVALID_INPUT", "cursor is not one this server gave") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= _MAX_OFFSET:
        raise ApiError(422, "INVALID_INPUT", "cursor is not one this server gave")
    return offset
