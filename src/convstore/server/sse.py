"""GET /api/v1/events: the store's changes to the caller's conversations as
Server-Sent Events, resumable with Last-Event-ID (signal-pull: clients fetch the data
over REST when a signal arrives). An open stream holds no database connection."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from convstore.models import Change
from convstore.server.auth import Caller
from convstore.server.context import context_of, reader
from convstore.server.errors import ApiError
from convstore.server.schemas import ERRORS, MAX_INT

RETRY_MS = 2000
EVENT_ID_PATTERN = r"^[0-9]{1,16}$"  # ASCII digits only: str.isdigit() also takes "²"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)


router = APIRouter(prefix="/api/v1", responses=ERRORS)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "change events"}},
)
async def events(
    request: Request,
    caller: Annotated[Caller, Depends(reader)],
    last_event_id: Annotated[
        str | None,
        Header(pattern=EVENT_ID_PATTERN, description="resume after this event id"),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_INT, description="resume after this event id")
    ] = None,
) -> StreamingResponse:
    """Each event names a change (``event``: its kind, ``id``: its place in the change
    feed, ``data``: the conversation and what changed). Send the last id seen as
    Last-Event-ID (or ``after``) to resume without missing any; a value that is not an
    event id is refused (422), whichever way it came."""
    ctx = context_of(request)
    mark = _resume_mark(last_event_id, after)
    user = caller.user_id
    subscription = ctx.hub.subscribe(
        after=mark, accept=lambda change: change.payload.get("owner_id") == user
    )

    async def stream() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            while not await request.is_disconnected():
                changes = await subscription.next(timeout=ctx.settings.heartbeat_seconds)
                if not changes:
                    yield ": heartbeat\n\n"
                for change in changes:
                    yield _event(change)
        finally:
            subscription.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _resume_mark(last_event_id: str | None, after: int | None) -> int | None:
    """Where to resume: Last-Event-ID if sent (ASCII digits, within the range of ids),
    else ``after``."""
    if last_event_id is None:
        return after
    if not _EVENT_ID.fullmatch(last_event_id) or int(last_event_id) > MAX_INT:
        raise ApiError(422, "INVALID_INPUT", "Last-Event-ID must be an event id this server sent")
    return int(last_event_id)


def _event(change: Change) -> str:
    data = {k: v for k, v in change.payload.items() if k != "owner_id"}
    data["conversation_id"] = change.conversation_id
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {change.id}\nevent: {change.kind}\ndata: {text}\n\n"
