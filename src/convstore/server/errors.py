"""One error envelope for every failure: ``{"error": {"code", "message", "request_id"}}``.

Store errors keep their stable codes and HTTP statuses; request validation errors become
INVALID_INPUT (422); anything unexpected is logged with its traceback and answered with
a generic 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from convstore.errors import ConversationManagerError
from convstore.server.observability import request_id

log = logging.getLogger("convstore.server")


class ApiError(Exception):
    """An HTTP error with a code of its own (authentication, limits, idempotency)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": request_id.get()}}
    return JSONResponse(body, status_code=status, headers=headers)


_HTTP_CODES = {
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with the envelope."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return envelope(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(ConversationManagerError)
    async def store_error(_: Request, exc: ConversationManagerError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("store error: %s", exc)
        return envelope(exc.http_status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return envelope(422, "INVALID_INPUT", _describe(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not even text: bad input, as the rest
            return envelope(422, "INVALID_INPUT", str(exc.detail))
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return envelope(exc.status_code, code, str(exc.detail), headers)


def internal_error() -> JSONResponse:
    """The answer to a failure the server did not expect (logged by the caller, in
    server.middleware): nothing about it but the request id."""
    return envelope(500, "INTERNAL_ERROR", "the server failed; the request id is in the logs")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (Starlette names only the
    first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, BaseRoute) and route.matches(request.scope)[0] is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _describe(errors: Any) -> str:
    """Validation errors as one readable line: where, and what was wrong."""
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
