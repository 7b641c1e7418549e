"""Redis, when configured (``redis_url`` or $CONVSTORE_REDIS_URL): a read cache of
conversation branches shared by every process of a deployment, and a channel on which
each write is announced so that other processes' change subscribers wake at once.

Both only help: a cached branch is served only under the stamp (created_at, version)
the store has just read from the database, so nothing stale is ever returned, and when
Redis cannot be reached the store goes on without it (logged once per outage, retried
with a growing pause) and callers see no error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from convstore.errors import ConfigurationError
from convstore.models import Message

log = logging.getLogger("convstore")
T = TypeVar("T")
_TIMEOUT = 0.5  # seconds a Redis call may take before Redis counts as down
_FIRST_PAUSE, _MAX_PAUSE = 1.0, 30.0  # before trying Redis again after an outage


class RedisLink:
    """One store's use of Redis."""

    def __init__(self, url: str, store_url: str, ttl: float) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigurationError(
                "redis_url needs the redis extra: pip install 'convstore[redis]'"
            ) from None
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT
        )
        self._url = url
        self._prefix = "convstore:" + hashlib.sha256(store_url.encode()).hexdigest()[:16]
        self.channel = f"{self._prefix}:changes"
        self._ttl = max(1, int(ttl))
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._pause = _FIRST_PAUSE
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None
        self.hits = self.misses = 0

    # the cache ----------------------------------------------------------------------

    def get_branch(self, conversation_id: str, stamp: tuple[float, int]) -> list[Message] | None:
        """The branch cached under exactly this stamp, if any."""
        found = self._call(lambda: self._client.get(self._key(conversation_id, stamp)))
        if not found:
            self.misses += 1
            return None
        self.hits += 1
        return [Message.model_validate(m) for m in json.loads(found)]

    def put_branch(
        self, conversation_id: str, stamp: tuple[float, int], messages: Sequence[Message]
    ) -> None:
        data = json.dumps([m.model_dump(mode="json") for m in messages], ensure_ascii=False)
        key = self._key(conversation_id, stamp)
        self._call(lambda: self._client.set(key, data.encode(), ex=self._ttl))

    def _key(self, conversation_id: str, stamp: tuple[float, int]) -> str:
        # a new version (or a conversation re-created under the same id) is a new key:
        # old entries are never read again and expire after the cache TTL
        return f"{self._prefix}:branch:{conversation_id}:{stamp[0]!r}:{stamp[1]}"

    # change announcements -----------------------------------------------------------------

    def announce(self) -> None:
        """Tell other processes that this one has just committed a write."""
        self._call(lambda: self._client.publish(self.channel, b"1"))

    def listen(self, wake: Callable[[], None]) -> threading.Thread:
        """Call ``wake`` whenever another process announces a write, from a thread that
        reconnects after outages; it ends with :meth:`close`."""
        self._listener = threading.Thread(
            target=self._listen, args=(wake,), name="convstore-redis", daemon=True
        )
        self._listener.start()
        return self._listener

    def _listen(self, wake: Callable[[], None]) -> None:
        while not self._stopped.is_set():
            if not self._available():
                self._stopped.wait(self._down_until - time.monotonic())
                continue
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self.channel)
                self._recovered()
                while not self._stopped.is_set():
                    if pubsub.get_message(timeout=0.2) is not None:
                        wake()
                pubsub.close()
            except self._errors as exc:
                self._failed(exc)
                wake()  # what was missed meanwhile is read from the change feed

    def close(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.join()
        self._call(self._client.close)

    # outages ------------------------------------------------------------------------------

    def _call(self, call: Callable[[], T]) -> T | None:
        if not self._available():
            return None
        try:
            result = call()
        except self._errors as exc:
            self._failed(exc)
            return None
        self._recovered()
        return result

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            first = self._pause == _FIRST_PAUSE
            self._down_until = time.monotonic() + self._pause
            self._pause = min(self._pause * 2, _MAX_PAUSE)
        if first:
            log.warning("Redis at %s is unavailable, going on without it: %s", self._url, exc)

    def _recovered(self) -> None:
        with self._lock:
            if self._pause == _FIRST_PAUSE:
                return
            self._pause = _FIRST_PAUSE
        log.warning("Redis at %s is back", self._url)

    def stats(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "available": self._available()}
