"""Per-key rate limits: a token bucket per (API key, kind of request), in this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from convstore.server.settings import Rate

_MAX_BUCKETS = 100_000  # beyond this, buckets idle long enough to be full are dropped


class RateLimiter:
    """Allows each caller ``rate.count`` requests of a kind per ``rate.period``, with
    bursts up to ``rate.count``; refills continuously. A kind whose rate is None is
    not limited."""

    def __init__(
        self, rates: dict[str, Rate | None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rates = rates
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, updated
        self._lock = threading.Lock()

    def retry_after(self, caller: str, kind: str) -> float | None:
        """Take a token; None if there was one, else the seconds until there is."""
        rate = self._rates[kind]
        if rate is None:
            return None
        per_second = rate.count / rate.period
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get((caller, kind), (float(rate.count), now))
            tokens = min(float(rate.count), tokens + (now - updated) * per_second)
            if tokens < 1.0:
                self._buckets[(caller, kind)] = (tokens, now)
                return (1.0 - tokens) / per_second
            self._buckets[(caller, kind)] = (tokens - 1.0, now)
            if len(self._buckets) > _MAX_BUCKETS:
                self._forget_idle(now)
        return None

    def _forget_idle(self, now: float) -> None:
        idle = []
        for key, (_, updated) in self._buckets.items():
            rate = self._rates[key[1]]
            if rate is None or now - updated > rate.period:
                idle.append(key)
        for key in idle:
            del self._buckets[key]
