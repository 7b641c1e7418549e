"""Who is calling: an API key (``Authorization: Bearer KEY``), or, only when enabled
for deployments behind an authenticating proxy, the ``X-User-ID`` header. Every request
then works through the store as that user sees it (``store.for_user``)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Request

from convstore.accounts import Accounts
from convstore.ids import is_valid_id
from convstore.server.errors import ApiError
from convstore.server.limits import RateLimiter
from convstore.server.observability import Metrics
from convstore.server.settings import ServerSettings
from convstore.store import ConversationStore

KEY_CACHE_SECONDS = 5.0  # a revoked key stops working within this time
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    """An authenticated user and the store as they see it (timed for the metrics)."""

    user_id: str
    store: ConversationStore


class Gate:
    """Authenticates requests and applies the caller's rate limits."""

    def __init__(self, store: ConversationStore, settings: ServerSettings, metrics: Metrics):
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._accounts = Accounts(store)
        self._limiter = RateLimiter(
            {"read": settings.read_rate, "write": settings.write_rate, "chunk": settings.chunk_rate}
        )
        self._known: dict[str, tuple[str | None, float]] = {}  # key digest -> user, until
        self._lock = threading.Lock()

    def admit(self, request: Request, kind: str) -> Caller:
        user_id = self._user(request)
        wait = self._limiter.retry_after(user_id, kind)
        if wait is not None:
            seconds = max(1, round(wait + 0.5))
            raise ApiError(
                429,
                "RATE_LIMITED",
                f"too many {kind} requests; try again in {seconds} s",
                {"Retry-After": str(seconds)},
            )
        view = self._store.for_user(user_id)
        return Caller(user_id, cast(ConversationStore, _Timed(view, self._metrics)))

    def _user(self, request: Request) -> str:
        if self._settings.trust_user_header:
            user_id = request.headers.get("x-user-id")
            if user_id is None or not is_valid_id(user_id):
                raise ApiError(401, "UNAUTHORIZED", "X-User-ID must name the user", _CHALLENGE)
            return user_id
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise ApiError(
                401, "UNAUTHORIZED", "send an API key as Authorization: Bearer KEY", _CHALLENGE
            )
        user_id = self._user_of(key.strip())
        if user_id is None:
            raise ApiError(401, "UNAUTHORIZED", "the API key is not valid", _CHALLENGE)
        return user_id

    def _user_of(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        now = time.monotonic()
        with self._lock:
            known = self._known.get(digest)
        if known is not None and known[1] > now:
            return known[0]
        user = self._accounts.authenticate(key)
        user_id = None if user is None else user.id
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = (user_id, now + KEY_CACHE_SECONDS)
        return user_id


class _Timed:
    """A store whose every call is timed into the metrics."""

    def __init__(self, store: ConversationStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found) or name in ("transaction", "for_user"):
            return found

        def timed(*args: Any, **kwargs: Any) -> Any:
            return self._metrics.timed(name, lambda: found(*args, **kwargs))

        return timed
