"""Who is calling: an API key (``Authorization: Bearer KEY``), or, only when enabled
for deployments behind an authenticating proxy, the ``X-User-ID`` header. Every request
then works through the store as that user sees it (``store.for_user``), within the rate
limits of its API key."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Request

from convstore.accounts import Accounts, User
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


@dataclass(frozen=True)
class _Identity:
    """Who sent a request; ``bucket`` is what their rate limits count against (the API
    key, or the user behind a trusted proxy); ``account`` is their user record when the
    key lookup already read it."""

    user_id: str
    bucket: str
    account: User | None


class Gate:
    """Authenticates requests and applies the rate limits of each API key."""

    def __init__(self, store: ConversationStore, settings: ServerSettings, metrics: Metrics):
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._accounts = Accounts(store)
        self._limiter = RateLimiter(
            {"read": settings.read_rate, "write": settings.write_rate, "chunk": settings.chunk_rate}
        )
        self._known: dict[str, tuple[User | None, float]] = {}  # key digest -> user, until
        self._lock = threading.Lock()

    def admit(self, request: Request, kind: str) -> Caller:
        """The caller of a request of ``kind`` ("read", "write" or "chunk"); ApiError
        401 without valid credentials, 429 over the key's limit."""
        identity = self._identify(request)
        wait = self._limiter.retry_after(identity.bucket, kind)
        if wait is not None:
            seconds = max(1, round(wait + 0.5))
            raise ApiError(
                429,
                "RATE_LIMITED",
                f"too many {kind} requests; try again in {seconds} s",
                {"Retry-After": str(seconds)},
            )
        view = self._store.for_user(identity.user_id)
        return Caller(identity.user_id, cast(ConversationStore, _Timed(view, self._metrics)))

    def is_admin(self, request: Request) -> bool | None:
        """Whether the request comes from a server admin; None if it names no caller at
        all (ApiError 401 if it names one wrongly). Not rate limited: monitoring polls."""
        header = "x-user-id" if self._settings.trust_user_header else "authorization"
        if header not in request.headers:
            return None
        identity = self._identify(request)
        account = identity.account or self._accounts.get_user(identity.user_id)
        return account is not None and account.is_admin

    def _identify(self, request: Request) -> _Identity:
        if self._settings.trust_user_header:
            user_id = request.headers.get("x-user-id")
            if user_id is None or not is_valid_id(user_id):
                raise ApiError(401, "UNAUTHORIZED", "X-User-ID must name the user", _CHALLENGE)
            return _Identity(user_id, f"user:{user_id}", None)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        key = given.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(
                401, "UNAUTHORIZED", "send an API key as Authorization: Bearer KEY", _CHALLENGE
            )
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        user = self._user_of(digest, key)
        if user is None:
            raise ApiError(401, "UNAUTHORIZED", "the API key is not valid", _CHALLENGE)
        return _Identity(user.id, f"key:{digest}", user)

    def _user_of(self, digest: str, key: str) -> User | None:
        """The key's user, remembered for KEY_CACHE_SECONDS under the key's digest."""
        now = time.monotonic()
        with self._lock:
            known = self._known.get(digest)
        if known is not None and known[1] > now:
            return known[0]
        user = self._accounts.authenticate(key)
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = (user, now + KEY_CACHE_SECONDS)
        return user


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
