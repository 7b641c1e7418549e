"""The REST + SSE server (``convstore serve``); needs the ``server`` extra."""

from __future__ import annotations

from convstore.server.app import create_app
from convstore.server.settings import Rate, ServerSettings

__all__ = ["Rate", "ServerSettings", "create_app"]
