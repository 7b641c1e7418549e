"""create_app: the FastAPI application of `convstore serve` around one store."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import convstore
from convstore.events import ChangeHub
from convstore.server import errors, routes, sse
from convstore.server.auth import Gate
from convstore.server.context import ServerContext
from convstore.server.observability import Metrics, accepted_request_id, request_id
from convstore.server.settings import ServerSettings
from convstore.store import ConversationStore

log = logging.getLogger("convstore.server")
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def create_app(store: ConversationStore, settings: ServerSettings | None = None) -> FastAPI:
    """The REST + SSE API over ``store``; the caller keeps the store and closes it."""
    settings = settings or ServerSettings()
    metrics = Metrics()
    hub = ChangeHub(store, poll_interval=settings.poll_interval)
    ctx = ServerContext(store, settings, Gate(store, settings, metrics), metrics, hub)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        failed = await run_in_threadpool(
            store.fail_unfinished_streams, idle_for=settings.stream_idle_timeout
        )
        if failed:
            log.warning("marked %d unfinished streamed replies as error", len(failed))
        try:
            yield
        finally:
            await run_in_threadpool(hub.close)

    app = FastAPI(
        title="convstore",
        version=convstore.__version__,
        description="Conversations and messages for LLM agents and chat applications.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(sse.router)

    @app.get("/health", tags=["system"])
    def health() -> dict[str, Any]:
        """The store's health report."""
        return store.health_check()

    @app.get("/metrics", tags=["system"], response_class=Response)
    def metrics_page() -> Response:
        """Prometheus metrics: requests, latencies, store operation latencies."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # inside observe()

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = accepted_request_id(request.headers.get("x-request-id")) or uuid.uuid4().hex
        token = request_id.set(rid)
        start = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            request_id.reset(token)
        elapsed = time.perf_counter() - start
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(elapsed)
        response.headers["X-Request-ID"] = rid
        log.info(
            "%s %s %d %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            elapsed * 1000,
            extra={
                "fields": {
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 3),
                }
            },
        )
        return response

    app.state.context = ctx
    return app


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
