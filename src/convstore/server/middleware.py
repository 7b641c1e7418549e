"""The ASGI layers around every request: its id, log line and metrics (Observe, the
outermost), and the body size limit (BodyLimit)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers, MutableHeaders

from convstore.server import errors
from convstore.server.observability import Metrics, accepted_request_id, request_id

log = logging.getLogger("convstore.server")
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Observe:
    """Gives each request an id (the client's X-Request-ID if plain, else a new one),
    kept set until the request is done, so that every line logged while serving it
    carries the id: the access line, store errors, and an unexpected failure, which is
    logged with its traceback and answered with the 500 envelope. Every response gets
    the id as X-Request-ID, and is counted and timed (to its first byte) in the metrics.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = accepted_request_id(Headers(scope=scope).get("x-request-id")) or uuid.uuid4().hex
        token = request_id.set(rid)
        start = time.perf_counter()
        started = False

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)["X-Request-ID"] = rid
                self._record(scope, message["status"], time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error")
            if started:  # too late for an answer: the server drops the connection
                raise
            await errors.internal_error()(scope, receive, send_with_id)
        finally:
            request_id.reset(token)

    def _record(self, scope: dict[str, Any], status: int, elapsed: float) -> None:
        """Count, time and log an answered request (while its id is still set)."""
        method, path = scope["method"], scope["path"]
        route = getattr(scope.get("route"), "path", "unmatched")
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.latency.labels(method, route).observe(elapsed)
        log.info(
            "%s %s %d %.1f ms",
            method,
            path,
            status,
            elapsed * 1000,
            extra={
                "fields": {
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                }
            },
        )


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (413) before they reach a route: by
    their announced length, or, sent without one, by reading at most that much."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = dict(scope["headers"]).get(b"content-length")
        if announced is not None:
            if announced.isdigit() and int(announced) > self.max_bytes:
                await _too_large(self.max_bytes, send)
                return
            await self.app(scope, receive, send)
            return
        pieces, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            pieces.append(message.get("body", b""))
            size += len(pieces[-1])
            if size > self.max_bytes:
                await _too_large(self.max_bytes, send)
                return
            more = message.get("more_body", False)
        whole = {"type": "http.request", "body": b"".join(pieces), "more_body": False}
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return whole

        await self.app(scope, replay, send)


async def _too_large(limit: int, send: Any) -> None:
    response = errors.envelope(
        413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {limit} bytes"
    )
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
