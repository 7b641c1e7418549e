"""The SQL flavors by URL scheme: the one module that knows every flavor.

Each flavor module depends only on the base flavor module (``flavor``); this registry
depends on them, so the dependency runs one way. A new database adds its flavor module
and one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from convstore.backends.sql.flavor import Flavor
from convstore.backends.sql.postgres import PostgresFlavor
from convstore.backends.sql.sqlite import SqliteFlavor
from convstore.backends.urls import url_scheme
from convstore.config import ConversationManagerConfig
from convstore.errors import ConfigurationError

FLAVORS: dict[str, Callable[[str, ConversationManagerConfig], Flavor]] = {
    "sqlite": SqliteFlavor,
    "memory": SqliteFlavor,
    "postgresql": PostgresFlavor,
    "postgres": PostgresFlavor,
}


def flavor_for(url: str, config: ConversationManagerConfig) -> Flavor:
    """The flavor of a store URL."""
    make = FLAVORS.get(url_scheme(url))
    if make is None:
        raise ConfigurationError(f"store URL {url!r} is not a SQL database URL")
    return make(url, config)
