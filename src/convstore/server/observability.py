"""Request ids, structured logs and Prometheus metrics of the server."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

request_id: ContextVar[str | None] = ContextVar("convstore_request_id", default=None)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def accepted_request_id(value: str | None) -> str | None:
    """A client's X-Request-ID if it is short and plain (else the server makes one)."""
    return value if value is not None and _CLIENT_ID.fullmatch(value) else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records for plain-text formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


def configure_logging(*, as_json: bool, level: str = "INFO") -> None:
    """Send convstore's logs (and uvicorn's) to stderr, as JSON lines or as text."""
    handler = logging.StreamHandler()
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
        handler.addFilter(RequestIdFilter())
    for name in ("convstore", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "convstore_http_requests",
            "HTTP requests answered, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "convstore_http_request_seconds",
            "Time to answer an HTTP request (to the first byte of streams)",
            ["method", "route"],
            registry=self.registry,
        )
        self.store_latency = Histogram(
            "convstore_store_operation_seconds",
            "Time taken by store operations, by operation",
            ["operation"],
            registry=self.registry,
        )

    def timed(self, operation: str, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return call()
        finally:
            self.store_latency.labels(operation).observe(time.perf_counter() - start)
