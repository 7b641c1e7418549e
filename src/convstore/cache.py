"""An LRU cache with a time-to-live whose entries are only served while still current.

Each entry remembers the stamp (created_at, version) of the conversation it was read
from. The store compares that stamp with the stored one, read in the same snapshot,
before serving an entry, so a change made by any process, even one that deleted and
re-created the conversation, is never hidden by the cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Stamp = tuple[float, int]
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    stamp: Stamp
    value: V
    expires_at: float


class StampedLRUCache(Generic[V]):
    """At most ``max_size`` entries, each dropped ``ttl`` seconds after it was stored."""

    def __init__(
        self, max_size: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, current_stamp: Stamp | None) -> V | None:
        """The value stored under ``key`` if it was read at ``current_stamp`` and is fresh."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.stamp != current_stamp or entry.expires_at <= self._clock():
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.value

    def put(self, key: str, stamp: Stamp, value: V) -> None:
        """Store ``value`` as read at ``stamp``, evicting the least recently used entry."""
        if self.max_size == 0 or self.ttl == 0:
            return
        with self._lock:
            self._entries[key] = _Entry(stamp, value, self._clock() + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def invalidate(self, key: str) -> None:
        """Forget ``key`` (a write made it out of date)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        """Size and hit counters, for health reports."""
        return {
            "size": len(self._entries),
            "max_size": self.max_size,
            "hits": self.hits,
            "misses": self.misses,
        }
