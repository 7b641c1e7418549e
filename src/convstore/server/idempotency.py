"""Idempotency-Key: a retried write returns the first answer and adds nothing.

The first answer is kept for 24 hours as a record keyed by user and key, with a
fingerprint of the request (method, path and the body as parsed JSON, so whitespace and
key order do not count); the same key with another request is refused. Writes that
create something also derive the new id from the key when the client gave none, so even
two copies racing, or a crash between the write and remembering its answer, store it once
(the store treats a known id as a retry).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse

from convstore.server.errors import ApiError
from convstore.store import ConversationStore

NAMESPACE = "idempotency"
TTL = 24 * 3600.0
KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"  # visible ASCII


@dataclass(frozen=True)
class IdempotentRequest:
    """The key a client sent and a fingerprint of its request."""

    key: str
    fingerprint: str


async def idempotent_request(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=KEY_PATTERN,
            description="send a retried write with the key of its first try: it is done once",
        ),
    ] = None,
) -> IdempotentRequest | None:
    """The request's Idempotency-Key (checked against KEY_PATTERN by FastAPI) and
    fingerprint, if it has one."""
    if key is None:
        return None
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    digest.update(canonical_body(await request.body()))
    return IdempotentRequest(key, digest.hexdigest())


def canonical_body(body: bytes) -> bytes:
    """The body as canonical JSON (sorted keys, no spaces, ASCII), so that one request
    written two ways is one request; a body that is not JSON stays as it is (the route
    refuses it anyway)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep
        return body
    return json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()


class Idempotency:
    """One user's idempotent request against the store."""

    def __init__(self, store: ConversationStore, user_id: str, request: IdempotentRequest):
        self._store = store
        self._request = request
        self._record_key = f"{user_id}:{request.key}"
        self.derived_id = "ik-" + hashlib.sha256(self._record_key.encode()).hexdigest()[:40]

    def replay(self) -> JSONResponse | None:
        """The first answer to this key, if there was one; ApiError if the key was used
        for another request."""
        first = self._store.get_record(NAMESPACE, self._record_key)
        if first is None:
            return None
        if first["fingerprint"] != self._request.fingerprint:
            raise ApiError(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used for a different request",
            )
        return JSONResponse(
            first["body"], status_code=first["status"], headers={"Idempotent-Replayed": "true"}
        )

    def remember(self, status: int, body: Any) -> None:
        record = {"fingerprint": self._request.fingerprint, "status": status, "body": body}
        self._store.put_record(NAMESPACE, self._record_key, record, ttl=TTL)
