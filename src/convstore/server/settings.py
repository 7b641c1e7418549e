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


@dataclass(frozen=True)
class ServerSettings:
    """Limits per API key follow seed 001: 30 reads and 10 new messages a minute.
    Chunks of streamed replies have their own, higher limit; other writes share the
    message limit. ``trust_user_header`` takes the user from ``X-User-ID`` instead of
    an API key: only behind a proxy that authenticates users and sets that header."""

    read_rate: Rate = Rate(30, 60.0)
    write_rate: Rate = Rate(10, 60.0)
    chunk_rate: Rate = Rate(6000, 60.0)
    max_body_bytes: int = 2 * 1024 * 1024
    trust_user_header: bool = False
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
