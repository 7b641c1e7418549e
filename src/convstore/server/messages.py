"""The messages of a conversation and its streamed replies, under /api/v1.

Like every route, these only translate between HTTP and store calls.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response
from fastapi.responses import JSONResponse

from convstore.errors import InvalidInputError, MessageNotFoundError
from convstore.models import Chunk, Message
from convstore.server.context import (
    ChunkWriter,
    Idem,
    Reader,
    Writer,
    answer,
    body,
    make_router,
    message_of,
)
from convstore.server.schemas import (
    ID_PATTERN,
    MAX_INT,
    MAX_PAGE_SIZE,
    AbortIn,
    ChunkPage,
    ChunksIn,
    ConversationId,
    Deleted,
    FinalizeIn,
    MessageEdit,
    MessageId,
    MessageIn,
    MessagePage,
    MessagesIn,
    PageSize,
    SeqBound,
    StreamIn,
)

MAX_CHUNK_PAGE = 10_000
_IDS = rf"^{ID_PATTERN[1:-1]}(,{ID_PATTERN[1:-1]}){{0,{MAX_PAGE_SIZE - 1}}}$"
router = make_router()


@router.post("/conversations/{conversation_id}/messages", status_code=201, response_model=Message)
def append_message(
    conversation_id: ConversationId, payload: MessageIn, caller: Writer, idem: Idem
) -> Response:
    def append(derived: str | None) -> Message:
        new = payload.to_new(payload.message_id or derived)
        return caller.store.append_messages(conversation_id, [new])[0]

    return answer(caller, idem, 201, append)


@router.post(
    "/conversations/{conversation_id}/messages/batch",
    status_code=201,
    response_model=list[Message],
)
def append_messages(
    conversation_id: ConversationId, payload: MessagesIn, caller: Writer, idem: Idem
) -> Response:
    def append(derived: str | None) -> list[Message]:
        news = [
            m.to_new(m.message_id or (derived and f"{derived}-{i}"))
            for i, m in enumerate(payload.messages)
        ]
        return caller.store.append_messages(conversation_id, news)

    return answer(caller, idem, 201, append)


@router.get("/conversations/{conversation_id}/messages", response_model=MessagePage)
def list_messages(
    conversation_id: ConversationId,
    caller: Reader,
    limit: PageSize = 50,
    newest_first: Annotated[
        bool, Query(description="newest first (a chat window paging back), else oldest first")
    ] = False,
    before: Annotated[
        SeqBound, Query(description="only messages with a lower seq (newest_first: next_cursor)")
    ] = None,
    after: Annotated[
        SeqBound, Query(description="only messages with a higher seq (oldest first: next_cursor)")
    ] = None,
    ids: Annotated[
        str | None,
        Query(pattern=_IDS, description=f"up to {MAX_PAGE_SIZE} message ids, comma-separated"),
    ] = None,
) -> Response:
    """The active branch, oldest first like ``store.get_messages``, a page at a time:
    pass ``next_cursor`` as ``after`` for the next page (as ``before`` when
    ``newest_first``). With ``ids``, just those messages (oldest first)."""
    if ids is not None:
        found = caller.store.get_messages(conversation_id, message_ids=ids.split(","))
        return JSONResponse({"items": body(found), "next_cursor": None})
    found = caller.store.get_messages(
        conversation_id,
        limit=limit + 1,
        before_seq=before,
        after_seq=after,
        newest_first=newest_first,
    )
    following = None
    if len(found) > limit:
        found = found[:limit]
        following = str(found[-1].seq)
    return JSONResponse({"items": body(found), "next_cursor": following})


@router.get("/conversations/{conversation_id}/messages/{message_id}", response_model=Message)
def get_message(conversation_id: ConversationId, message_id: MessageId, caller: Reader) -> Response:
    return JSONResponse(body(message_of(caller, conversation_id, message_id)))


@router.patch("/conversations/{conversation_id}/messages/{message_id}", response_model=Message)
def edit_message(
    conversation_id: ConversationId, message_id: MessageId, payload: MessageEdit, caller: Writer
) -> Response:
    edited = caller.store.update_message(
        conversation_id, message_id, content=payload.content, metadata=payload.metadata
    )
    if edited is None:
        raise MessageNotFoundError(conversation_id, message_id)
    return JSONResponse(body(edited))


@router.delete("/conversations/{conversation_id}/messages/{message_id}", status_code=204)
def delete_message(
    conversation_id: ConversationId, message_id: MessageId, caller: Writer
) -> Response:
    if not caller.store.delete_message(conversation_id, message_id):
        raise MessageNotFoundError(conversation_id, message_id)
    return Response(status_code=204)


@router.delete(
    "/conversations/{conversation_id}/messages/{message_id}/pair", response_model=Deleted
)
def delete_pair(conversation_id: ConversationId, message_id: MessageId, caller: Writer) -> Response:
    """A user message and the replies that follow it on its branch."""
    deleted = caller.store.delete_message_pair(conversation_id, message_id)
    if not deleted:
        raise MessageNotFoundError(conversation_id, message_id)
    return JSONResponse({"deleted": [m.id for m in deleted]})


# streamed replies ------------------------------------------------------------------


@router.post("/conversations/{conversation_id}/streams", status_code=201, response_model=Message)
def begin_stream(
    conversation_id: ConversationId, payload: StreamIn, caller: Writer, idem: Idem
) -> Response:
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
    conversation_id: ConversationId, message_id: MessageId, payload: ChunksIn, caller: ChunkWriter
) -> Response:
    """Chunks numbered from 1, consecutive within a request; resending stored ones is a
    no-op, a number reused for other text is 409, one that leaves a gap 422."""
    first = payload.chunks[0].seq
    if [c.seq for c in payload.chunks] != list(range(first, first + len(payload.chunks))):
        raise InvalidInputError("chunk numbers in one request must be consecutive")
    stored = caller.store.append_chunks(
        conversation_id, message_id, [c.delta for c in payload.chunks], first_seq=first
    )
    return JSONResponse({"items": body(stored)})


@router.get(
    "/conversations/{conversation_id}/messages/{message_id}/chunks",
    response_model=ChunkPage,
)
def get_chunks(
    conversation_id: ConversationId,
    message_id: MessageId,
    caller: Reader,
    after: Annotated[int, Query(ge=0, le=MAX_INT, description="the last chunk seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_CHUNK_PAGE)] = 1000,
) -> Response:
    found: list[Chunk] = caller.store.get_chunks(
        conversation_id, message_id, after=after, limit=limit
    )
    return JSONResponse({"items": body(found)})


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/finalize", response_model=Message
)
def finalize(
    conversation_id: ConversationId, message_id: MessageId, payload: FinalizeIn, caller: Writer
) -> Response:
    """The reply's content becomes its chunks joined; safe to repeat."""
    done = caller.store.finalize_stream(
        conversation_id,
        message_id,
        finish_reason=payload.finish_reason,
        usage=None if payload.usage is None else payload.usage.to_usage(),
    )
    return JSONResponse(body(done))


@router.post("/conversations/{conversation_id}/messages/{message_id}/abort", response_model=Message)
def abort(
    conversation_id: ConversationId, message_id: MessageId, payload: AbortIn, caller: Writer
) -> Response:
    """The reply keeps what arrived, with status "error"; safe to repeat."""
    aborted = caller.store.abort_stream(conversation_id, message_id, reason=payload.reason)
    return JSONResponse(body(aborted))
