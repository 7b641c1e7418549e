"""ServerSettings: how `convstore serve` answers, limits and logs (the store's own
settings stay in ConversationManagerConfig)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from convstore.errors import ConfigurationError

_RATE = re.compile(r"(\d+)/(second|minute|hour)")
_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``period`` seconds."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """A rate written like ``30/minute`` (per second, minute or hour)."""
        found = _RATE.fullmatch(text.strip()) if isinstance(text, str) else None
        if found is None or int(found.group(1)) < 1:
            raise ConfigurationError(
                f"a rate limit reads like 30/minute (per second, minute or hour); got {text!r}"
            )
        return cls(int(found.group(1)), _SECONDS[found.group(2)])


DEMO_RATE = Rate(1000, 60.0)  # `serve --demo-user`: a trial, never throttled by a walk-through


@dataclass(frozen=True)
class ServerSettings:
    """Limits per API key follow seed 001: 30 reads and 10 new messages a minute.
    Chunks of streamed replies have their own, higher limit; other writes share the
    message limit; None is no limit. ``trust_user_header`` takes the user from
    ``X-User-ID`` instead of an API key: only behind a proxy that authenticates users
    and sets that header (limits then count per user). ``public_metrics`` shows the
    health details and /metrics to everyone, not only to server admins."""

    read_rate: Rate | None = Rate(30, 60.0)
    write_rate: Rate | None = Rate(10, 60.0)
    chunk_rate: Rate | None = Rate(6000, 60.0)
    max_body_bytes: int = 2 * 1024 * 1024
    trust_user_header: bool = False
    public_metrics: bool = False
    log_json: bool = False
    heartbeat_seconds: float = 15.0
    poll_interval: float = 0.5
    stream_idle_timeout: float = 0.0  # start-up marks streams idle this long as error

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be positive")
        for name in ("heartbeat_seconds", "poll_interval"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        if self.stream_idle_timeout < 0:
            raise ConfigurationError("stream_idle_timeout must not be negative")


def serve_rates(
    read_rate: str | None, write_rate: str | None, rate_limit: int | None, *, demo: bool
) -> tuple[Rate | None, Rate | None]:
    """The read and write limits `convstore serve` runs with: ``rate_limit`` is writes
    per minute per key (0: none) and stands for ``write_rate``; what is not given keeps
    the seed's default, or a generous one for a demo server."""
    if rate_limit is not None and write_rate is not None:
        raise ConfigurationError("give --rate-limit or --write-rate, not both")
    if rate_limit is not None and rate_limit < 0:
        raise ConfigurationError(f"--rate-limit must be 0 (no limit) or more; got {rate_limit}")
    defaults = ServerSettings()
    read = Rate.parse(read_rate) if read_rate is not None else defaults.read_rate
    write = Rate.parse(write_rate) if write_rate is not None else defaults.write_rate
    if rate_limit is not None:
        write = Rate(rate_limit, 60.0) if rate_limit else None
    if demo:
        read = read if read_rate is not None else DEMO_RATE
        write = write if write_rate is not None or rate_limit is not None else DEMO_RATE
    return read, write
