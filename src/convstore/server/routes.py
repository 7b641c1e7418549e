"""The REST resources under /api/v1: conversations, messages, streamed replies, search.

Routes only translate between HTTP and store calls; every rule (ownership included)
is the store's. Handlers are plain functions, run by FastAPI in its thread pool.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from convstore.errors import (
    ConcurrencyError,
    ConversationNotFoundError,
    InvalidInputError,
    MessageNotFoundError,
)
from convstore.models import Chunk, Conversation, Message, NewMessage
from convstore.server.auth import Caller
from convstore.server.context import answer, body, chunk_writer, reader, writer
from convstore.server.errors import ApiError
from convstore.server.idempotency import IdempotentRequest, idempotent_request
from convstore.server.schemas import (
    BELOW_2_63,
    ERRORS,
    AbortIn,
    ChunkPage,
    ChunksIn,
    ConversationIn,
    ConversationMetadata,
    ConversationPage,
    ConversationPatch,
    Deleted,
    FinalizeIn,
    MessageEdit,
    MessageIn,
    MessagePage,
    MessagesIn,
    SearchHit,
    SearchPage,
    Snippet,
    StateIn,
    StreamIn,
)

MAX_PAGE_SIZE = 200  # seed 001's cap on a page of messages

Idem = Annotated[IdempotentRequest | None, Depends(idempotent_request)]
Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]
ChunkWriter = Annotated[Caller, Depends(chunk_writer)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
router = APIRouter(prefix="/api/v1", responses=ERRORS)

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
                initial_messages=[_new(m) for m in payload.messages],
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
    cursor: str | None = None,
    order_by: Literal["updated_at", "created_at", "name"] = "updated_at",
    descending: bool = True,
    created_after: float | None = None,
    created_before: float | None = None,
    updated_after: float | None = None,
    updated_before: float | None = None,
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
    return _json({"items": body(found[:limit]), "next_cursor": following})


@router.get("/conversations/{conversation_id}", response_model=Conversation)
def get_conversation(conversation_id: str, caller: Reader) -> Response:
    return _json(body(_conversation(caller, conversation_id)))


@router.get("/conversations/{conversation_id}/metadata", response_model=ConversationMetadata)
def conversation_metadata(conversation_id: str, caller: Reader) -> Response:
    c = _conversation(caller, conversation_id)
    fields = ConversationMetadata.model_fields
    return _json({name: getattr(c, name) for name in fields})


@router.patch("/conversations/{conversation_id}", response_model=Conversation)
def update_conversation(
    conversation_id: str, payload: ConversationPatch, caller: Writer
) -> Response:
    updated = caller.store.update_conversation(
        conversation_id,
        name=payload.name,
        description=payload.description,
        metadata=payload.metadata,
    )
    if updated is None:
        raise ConversationNotFoundError(conversation_id)
    return _json(body(updated))


@router.delete("/conversations/{conversation_id}", status_code=204)
def delete_conversation(conversation_id: str, caller: Writer, hard: bool = False) -> Response:
    if not caller.store.delete_conversation(conversation_id, soft=not hard):
        raise ConversationNotFoundError(conversation_id)
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/restore", response_model=Conversation)
def restore_conversation(conversation_id: str, caller: Writer) -> Response:
    return _json(body(caller.store.restore_conversation(conversation_id)))


@router.put("/conversations/{conversation_id}/state", response_model=Conversation)
def set_state(conversation_id: str, payload: StateIn, caller: Writer) -> Response:
    moved = caller.store.set_state(
        conversation_id, payload.state, expected_version=payload.expected_version
    )
    return _json(body(moved))


# messages -----------------------------------------------------------------------------


@router.post("/conversations/{conversation_id}/messages", status_code=201, response_model=Message)
def append_message(
    conversation_id: str, payload: MessageIn, caller: Writer, idem: Idem
) -> Response:
    def append(derived: str | None) -> Message:
        new = _new(payload, payload.message_id or derived)
        return caller.store.append_messages(conversation_id, [new])[0]

    return answer(caller, idem, 201, append)


@router.post(
    "/conversations/{conversation_id}/messages/batch",
    status_code=201,
    response_model=list[Message],
)
def append_messages(
    conversation_id: str, payload: MessagesIn, caller: Writer, idem: Idem
) -> Response:
    def append(derived: str | None) -> list[Message]:
        news = [
            _new(m, m.message_id or (derived and f"{derived}-{i}"))
            for i, m in enumerate(payload.messages)
        ]
        return caller.store.append_messages(conversation_id, news)

    return answer(caller, idem, 201, append)


@router.get("/conversations/{conversation_id}/messages", response_model=MessagePage)
def list_messages(
    conversation_id: str,
    caller: Reader,
    limit: PageSize = 50,
    order: Literal["newest", "oldest"] = "newest",
    before: Annotated[int | None, Query(ge=0, lt=BELOW_2_63)] = None,
    after: Annotated[int | None, Query(ge=0, lt=BELOW_2_63)] = None,
    ids: Annotated[str | None, Query(description="comma-separated message ids")] = None,
) -> Response:
    if ids is not None:
        wanted = [i for i in ids.split(",") if i]
        if len(wanted) > MAX_PAGE_SIZE:
            raise InvalidInputError(f"ask for at most {MAX_PAGE_SIZE} ids")
        found = caller.store.get_messages(conversation_id, message_ids=wanted)
        return _json({"items": body(found), "next_cursor": None})
    newest = order == "newest"
    found = caller.store.get_messages(
        conversation_id,
        limit=limit + 1,
        before_seq=before,
        after_seq=after,
        newest_first=newest,
    )
    following = None
    if len(found) > limit:
        found = found[:limit]
        following = str(found[-1].seq)
    return _json({"items": body(found), "next_cursor": following})


@router.get("/conversations/{conversation_id}/messages/{message_id}", response_model=Message)
def get_message(conversation_id: str, message_id: str, caller: Reader) -> Response:
    return _json(body(_message(caller, conversation_id, message_id)))


@router.patch("/conversations/{conversation_id}/messages/{message_id}", response_model=Message)
def edit_message(
    conversation_id: str, message_id: str, payload: MessageEdit, caller: Writer
) -> Response:
    edited = caller.store.update_message(
        conversation_id, message_id, content=payload.content, metadata=payload.metadata
    )
    if edited is None:
        raise MessageNotFoundError(conversation_id, message_id)
    return _json(body(edited))


@router.delete("/conversations/{conversation_id}/messages/{message_id}", status_code=204)
def delete_message(conversation_id: str, message_id: str, caller: Writer) -> Response:
    if not caller.store.delete_message(conversation_id, message_id):
        raise MessageNotFoundError(conversation_id, message_id)
    return Response(status_code=204)


@router.delete(
    "/conversations/{conversation_id}/messages/{message_id}/pair", response_model=Deleted
)
def delete_pair(conversation_id: str, message_id: str, caller: Writer) -> Response:
    deleted = caller.store.delete_message_pair(conversation_id, message_id)
    if not deleted:
        raise MessageNotFoundError(conversation_id, message_id)
    return _json({"deleted": [m.id for m in deleted]})


# streamed replies ------------------------------------------------------------------


@router.post("/conversations/{conversation_id}/streams", status_code=201, response_model=Message)
def begin_stream(conversation_id: str, payload: StreamIn, caller: Writer, idem: Idem) -> Response:
    def begin(derived: str | None) -> Message:
        return caller.store.begin_stream(
            conversation_id,
            role=payload.role.value,
            message_id=payload.message_id or derived,
            metadata=payload.metadata,
            type=payload.type,
            sender_id=payload.sender_id,
        )

    return answer(caller, idem, 201, begin)


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/chunks",
    response_model=ChunkPage,
)
def append_chunks(
    conversation_id: str, message_id: str, payload: ChunksIn, caller: ChunkWriter
) -> Response:
    first = payload.chunks[0].seq
    if [c.seq for c in payload.chunks] != list(range(first, first + len(payload.chunks))):
        raise InvalidInputError("chunk numbers in one request must be consecutive")
    stored = caller.store.append_chunks(
        conversation_id, message_id, [c.delta for c in payload.chunks], first_seq=first
    )
    return _json({"items": body(stored)})


@router.get(
    "/conversations/{conversation_id}/messages/{message_id}/chunks",
    response_model=ChunkPage,
)
def get_chunks(
    conversation_id: str,
    message_id: str,
    caller: Reader,
    after: Annotated[int, Query(ge=0, lt=BELOW_2_63)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    found: list[Chunk] = caller.store.get_chunks(
        conversation_id, message_id, after=after, limit=limit
    )
    return _json({"items": body(found)})


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/finalize", response_model=Message
)
def finalize(
    conversation_id: str, message_id: str, payload: FinalizeIn, caller: Writer
) -> Response:
    done = caller.store.finalize_stream(
        conversation_id,
        message_id,
        finish_reason=payload.finish_reason,
        usage=None if payload.usage is None else payload.usage.to_usage(),
    )
    return _json(body(done))


@router.post("/conversations/{conversation_id}/messages/{message_id}/abort", response_model=Message)
def abort(conversation_id: str, message_id: str, payload: AbortIn, caller: Writer) -> Response:
    return _json(
        body(caller.store.abort_stream(conversation_id, message_id, reason=payload.reason))
    )


# search -------------------------------------------------------------------------------


@router.get("/search", response_model=SearchPage)
def search(
    caller: Reader,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    target: Literal["messages", "conversations"] = "messages",
    mode: Literal["text", "semantic", "hybrid"] = "text",
    conversation_id: str | None = None,
    limit: PageSize = 20,
    cursor: str | None = None,
) -> Response:
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
    return _json({"items": body(hits), "next_cursor": results.next_cursor})


def _json(content: Any) -> Response:
    return JSONResponse(content)


def _new(message: MessageIn, message_id: str | None = None) -> NewMessage:
    return NewMessage(
        role=message.role.value,
        content=message.content,
        metadata=message.metadata,
        id=message_id if message_id is not None else message.message_id,
        type=message.type,
        sender_id=message.sender_id,
        usage=None if message.usage is None else message.usage.to_usage(),
    )


def _conversation(caller: Caller, conversation_id: str) -> Conversation:
    found = caller.store.get_conversation(conversation_id)
    if found is None:
        raise ConversationNotFoundError(conversation_id)
    return found


def _message(caller: Caller, conversation_id: str, message_id: str) -> Message:
    if caller.store.get_conversation(conversation_id) is None:
        raise ConversationNotFoundError(conversation_id)
    found = caller.store.get_message(conversation_id, message_id)
    if found is None:
        raise MessageNotFoundError(conversation_id, message_id)
    return found


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    """The position a conversation-list cursor stands for."""
    if cursor is None:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = decoded["o"]
    except (ValueError, TypeError, KeyError):
        raise ApiError(422, "INVALID_INPUT", "cursor is not one this server gave") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < BELOW_2_63:
        raise ApiError(422, "INVALID_INPUT", "cursor is not one this server gave")
    return offset
