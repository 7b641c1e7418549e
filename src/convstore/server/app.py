"""create_app: the FastAPI application of `convstore serve` around one store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

import convstore
from convstore.events import ChangeHub
from convstore.server import errors, routes, sse, system
from convstore.server.auth import Gate
from convstore.server.context import ServerContext
from convstore.server.middleware import BodyLimit, Observe
from convstore.server.observability import Metrics
from convstore.server.settings import ServerSettings
from convstore.store import ConversationStore

log = logging.getLogger("convstore.server")


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
        docs_url=None,  # served by system.install, without a CDN
        redoc_url=None,
    )
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(sse.router)
    system.install(app)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observe, metrics=metrics)  # added last: the outermost layer

    app.state.context = ctx
    return app
