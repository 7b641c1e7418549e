"""Backends by URL scheme."""

from __future__ import annotations

from convstore.backends.base import Backend
from convstore.backends.urls import url_scheme
from convstore.config import ConversationManagerConfig
from convstore.errors import ConfigurationError

SCHEMES = ("sqlite", "memory", "file", "postgresql", "postgres")


def open_backend(url: str, config: ConversationManagerConfig) -> Backend:
    """The backend for ``url``: ``sqlite:///PATH``, ``memory://``, ``file://PATH`` or
    ``postgresql://...``."""
    scheme = url_scheme(url)
    if scheme == "file":
        from convstore.backends.files.backend import FilesBackend

        return FilesBackend(url, config)
    if scheme in SCHEMES:
        from convstore.backends.sql.backend import SqlBackend

        return SqlBackend(url, config)
    raise ConfigurationError(
        f"store URL scheme {scheme!r} is not supported (supported: {', '.join(SCHEMES)})"
    )
