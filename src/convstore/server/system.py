"""What is not the API itself: GET /health and GET /metrics (liveness for anyone; the
store-wide figures, counts, disk usage and request metrics, only for server admins, or
for everyone when the server runs with ``public_metrics``), and the API docs at /docs
and /redoc, whose scripts and styles the server serves itself (from the
fastapi-offline package), so that they work without a network."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from convstore.server.context import ServerContext, context_of
from convstore.server.errors import ApiError
from convstore.server.schemas import Health

ASSETS_URL = "/docs/assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI 5 and ReDoc
router = APIRouter(tags=["system"])
_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
_ADMIN_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "no valid API key", "content": _ENVELOPE},
    403: {"description": "the API key is not a server admin's", "content": _ENVELOPE},
}
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@router.get("/health", response_model=Health, responses={401: _ADMIN_ERRORS[401]})
def health(request: Request) -> Response:
    """``{"status": "ok"}`` while the server runs. A server admin's key (or any
    request, with public metrics) gets the store's health report instead: status,
    backend, conversation and message counts, disk usage, cache figures."""
    ctx = context_of(request)
    if not _shows_figures(ctx, request):
        return JSONResponse({"status": "ok"})
    return JSONResponse(ctx.store.health_check())


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text format"}, **_ADMIN_ERRORS},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics (requests by route and status, request and store operation
    latencies), for server admins (or for everyone, with public metrics)."""
    ctx = context_of(request)
    shown = _shows_figures(ctx, request)
    if shown is None:
        raise ApiError(401, "UNAUTHORIZED", "the metrics need a server admin's API key", _CHALLENGE)
    if not shown:
        raise ApiError(403, "FORBIDDEN", "only server admins may read the metrics")
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _shows_figures(ctx: ServerContext, request: Request) -> bool | None:
    """Whether the request may see store-wide figures; None if it names no caller."""
    if ctx.settings.public_metrics:
        return True
    return ctx.gate.is_admin(request)


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over /openapi.json; "Authorize" takes an API key."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="convstore API",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
    )


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over /openapi.json (no web fonts: nothing is fetched from elsewhere)."""
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}/openapi.json",
        title="convstore API",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


def install(app: FastAPI) -> None:
    """Add these routes and the docs' static files to ``app`` (built with FastAPI's own
    docs pages turned off)."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
