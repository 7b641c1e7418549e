"""``convstore.open``: a store from a URL and settings."""

from __future__ import annotations

from typing import Any

from convstore.backends import open_backend
from convstore.config import ConversationManagerConfig
from convstore.store import ConversationStore


def open(
    url: str | None = None,
    *,
    config: ConversationManagerConfig | None = None,
    **settings: Any,
) -> ConversationStore:
    """Open (creating if needed) the store at ``url``.

    Without a URL: $CONVSTORE_URL, then $DATABASE_URL, then
    ``sqlite:///./.convstore/convstore.db``. ``settings`` are ConversationManagerConfig
    fields, e.g. ``convstore.open("memory://", lock_timeout=2)``.
    """
    if config is None:
        config = ConversationManagerConfig(url=url, **settings)
    elif url is not None or settings:
        config = ConversationManagerConfig.from_dict({**config.to_dict(), "url": url, **settings})
    return ConversationStore(open_backend(config.store_url, config), config)
