"""GET /health and GET /metrics: liveness for anyone; the store-wide figures (counts,
disk usage, request metrics) only for server admins, or for everyone when the server
runs with ``public_metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from convstore.server.context import ServerContext, context_of
from convstore.server.errors import ApiError
from convstore.server.schemas import ERRORS, ErrorOut, Health

router = APIRouter(tags=["system"])
_ADMIN_ERRORS: dict[int | str, dict[str, object]] = {
    401: ERRORS[401],
    403: {"model": ErrorOut, "description": "the API key is not a server admin's"},
}
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@router.get("/health", response_model=Health, responses={401: ERRORS[401]})
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
