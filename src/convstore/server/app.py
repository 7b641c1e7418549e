"""create_app: the FastAPI application of `convstore serve` around one store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

import convstore
from convstore.events import ChangeHub
from convstore.server import errors, messages, routes, sse, system
from convstore.server.auth import Gate
from convstore.server.context import ServerContext
from convstore.server.middleware import BodyLimit, Observe
from convstore.server.observability import Metrics
from convstore.server.schemas import TEXT_RULE
from convstore.server.settings import Rate, ServerSettings
from convstore.store import ConversationStore

log = logging.getLogger("convstore.server")
_API_KEY = {"type": "http", "scheme": "bearer", "description": "an API key (cs_...)"}
_USER_HEADER = {
    "type": "apiKey",
    "in": "header",
    "name": "X-User-ID",
    "description": "the user, as the authenticating proxy in front of this server says",
}


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
        description=_description(settings),
        lifespan=lifespan,
        docs_url=None,  # served by system.install, without a CDN
        redoc_url=None,
    )
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(messages.router)
    app.include_router(sse.router)
    system.install(app)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observe, metrics=metrics)  # added last: the outermost layer

    _finish_document(app, store, settings)
    app.state.context = ctx
    return app


def _description(settings: ServerSettings) -> str:
    """The API's rules, as this server applies them, for the top of /docs."""
    caller = (
        "`X-User-ID: USER`, set by the proxy that authenticated the user"
        if settings.trust_user_header
        else '`Authorization: Bearer KEY` with a key from `convstore users add|key` ("Authorize")'
    )
    rates = ", ".join(
        f"{kind} {_rate(rate)}"
        for kind, rate in (
            ("reads", settings.read_rate),
            ("writes", settings.write_rate),
            ("chunks", settings.chunk_rate),
        )
    )
    return (
        "Conversations and messages for LLM agents and chat applications.\n\n"
        f"Every request under /api/v1 names its caller: {caller}. A user sees only their "
        "own conversations; another's answer 404, like missing ones. Errors read "
        '`{"error": {"code", "message", "request_id"}}`. Limits per API key: '
        f"{rates} (429 with Retry-After beyond them); request bodies of at most "
        f"{settings.max_body_bytes} bytes (413); the lengths, patterns and ranges stated "
        f"below (422). {TEXT_RULE}"
    )


def _rate(rate: Rate | None) -> str:
    return "unlimited" if rate is None else f"{rate.count} per {rate.period:g} s"


def _finish_document(app: FastAPI, store: ConversationStore, settings: ServerSettings) -> None:
    """Make /openapi.json say what depends on how this server runs: how a request names
    its caller (an API key, or X-User-ID behind a trusted proxy; required under
    /api/v1, optional on /health and on public /metrics), so that /docs can send it,
    and which search modes the store offers (semantic ones need an embedder)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # FastAPI's: builds the document and keeps it
        scheme = _USER_HEADER if settings.trust_user_header else _API_KEY
        schema.setdefault("components", {})["securitySchemes"] = {"caller": scheme}
        optional = {"/health"} | ({"/metrics"} if settings.public_metrics else set())
        for path, operations in schema["paths"].items():
            needed: list[dict[str, list[str]]] = [{"caller": []}]
            for operation in operations.values():
                operation["security"] = [{}, *needed] if path in optional else needed
        if store.config.embedder is None:
            _text_search_only(schema["paths"]["/api/v1/search"]["get"])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _text_search_only(operation: dict[str, Any]) -> None:
    for parameter in operation["parameters"]:
        if parameter["name"] == "mode":
            parameter["schema"]["enum"] = ["text"]
            parameter["description"] = (
                "text; semantic and hybrid need a store with an embedder, which this one lacks"
            )
