"""ConversationManagerConfig: every setting of a store, its defaults and its checks.

Defaults follow the seed specification (cache of 100 conversations for 300 s, 10 s lock
timeout, hourly backups keeping 10). Where the store lives is a URL; see
:func:`resolve_url` for how it is chosen.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from convstore.errors import ConfigurationError
from convstore.search.embedding import Embedder, embedder_named

DEFAULT_URL = "sqlite:///./.convstore/convstore.db"
ENV_PREFIX = "CONVSTORE_"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DURABILITY = ("normal", "full")


def resolve_url(url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The store URL to use: ``url`` if given, else $CONVSTORE_URL, else $DATABASE_URL,
    else the embedded default ``sqlite:///./.convstore/convstore.db``."""
    if url:
        return url
    env = os.environ if environ is None else environ
    return env.get("CONVSTORE_URL") or env.get("DATABASE_URL") or DEFAULT_URL


@dataclass(frozen=True)
class ConversationManagerConfig:
    """Settings of a store. Invalid values raise ConfigurationError at construction.

    ``url`` selects the backend; ``storage_path`` (the seed's setting) selects the
    JSON-files layout under that directory and is the same as ``url="file://PATH"``.
    ``backup_dir`` overrides where backups go (by default beside the store; a store in
    memory has no default). With ``auto_recover``, PersistConversationManager brings a
    conversation found damaged back from the newest backup that holds it.
    With neither, :func:`resolve_url` picks the URL from the environment or the
    embedded SQLite default. A conversation deleted with ``soft=True`` can be restored
    for ``trash_retention`` seconds (30 days by default). ``redis_url`` (else
    $CONVSTORE_REDIS_URL) adds Redis as a shared cache and change announcer.
    """

    storage_path: str | None = None
    url: str | None = None
    max_cache_size: int = 100
    cache_ttl: float = 300.0
    lock_timeout: float = 10.0
    backup_enabled: bool = True
    backup_interval: float = 3600.0
    max_backups: int = 10
    backup_dir: str | None = None
    auto_recover: bool = False
    embedder: Embedder | None = None
    embed_on_append: bool = True
    enable_compression: bool = False
    log_level: str = "INFO"
    max_message_size: int = 1_048_576
    durability: str = "normal"
    trash_retention: float = 30 * 86400.0
    retry_attempts: int = 3
    redis_url: str | None = None
    semantic_min_score: float = 0.2

    _NON_NEGATIVE: ClassVar[tuple[str, ...]] = (
        "max_cache_size",
        "cache_ttl",
        "lock_timeout",
        "max_backups",
        "trash_retention",
        "retry_attempts",
    )
    _POSITIVE: ClassVar[tuple[str, ...]] = ("backup_interval", "max_message_size")

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), field.type)
        for name in self._NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative; got {getattr(self, name)}")
        for name in self._POSITIVE:
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive; got {getattr(self, name)}")
        if self.log_level.upper() not in _LOG_LEVELS:
            raise ConfigurationError(
                f"log_level must be one of {', '.join(_LOG_LEVELS)}; got {self.log_level!r}"
            )
        if self.durability not in _DURABILITY:
            raise ConfigurationError(
                f"durability must be one of {', '.join(_DURABILITY)}; got {self.durability!r}"
            )
        if not -1.0 <= self.semantic_min_score <= 1.0:
            raise ConfigurationError(
                f"semantic_min_score must be from -1 to 1; got {self.semantic_min_score}"
            )
        if self.url is not None and self.storage_path is not None:
            raise ConfigurationError("give either url or storage_path, not both")

    @property
    def store_url(self) -> str:
        """The URL of the store these settings describe."""
        if self.storage_path is not None:
            return f"file://{self.storage_path}"
        return resolve_url(self.url)

    @property
    def resolved_redis_url(self) -> str | None:
        """The Redis URL these settings use: ``redis_url``, else $CONVSTORE_REDIS_URL."""
        return self.redis_url or os.environ.get("CONVSTORE_REDIS_URL") or None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ConversationManagerConfig:
        """Settings from a mapping of field names; unknown names are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown configuration keys: {', '.join(map(str, unknown))} "
                f"(known: {', '.join(sorted(known))})"
            )
        return cls(**values)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ConversationManagerConfig:
        """Settings from ``CONVSTORE_<FIELD>`` environment variables, then ``overrides``.

        For example ``CONVSTORE_LOCK_TIMEOUT=2.5`` or ``CONVSTORE_BACKUP_ENABLED=false``.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _parse_env(field.name, raw, str(field.type))
        values.update(overrides)
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for logs and health reports)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["embedder"] = None if self.embedder is None else self.embedder.name
        return values


def _check_type(name: str, value: object, declared: object) -> None:
    kind = str(declared)
    if value is None and "None" in kind:
        return
    if kind.startswith("Embedder"):
        ok = isinstance(value, Embedder)
    elif kind.startswith("bool"):
        ok = isinstance(value, bool)
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind.startswith("float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):  # type: ignore[arg-type]
            raise ConfigurationError(f"{name} must be a finite number; got {value!r}")
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigurationError(f"{name} must be of type {kind}; got {value!r}")


def _parse_env(name: str, raw: str, kind: str) -> Any:
    variable = ENV_PREFIX + name.upper()
    if kind.startswith("Embedder"):
        return embedder_named(raw.strip())
    try:
        if kind.startswith("bool"):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise ConfigurationError(
            f"${variable}={raw!r} is not a valid {kind.split(maxsplit=1)[0]}"
        ) from None
    return raw
