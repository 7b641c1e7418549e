"""Store URLs: the one place a URL's scheme is read."""

from __future__ import annotations

from convstore.errors import ConfigurationError


def url_scheme(url: object) -> str:
    """The scheme of a store URL, lower-cased and without a driver suffix
    (``postgresql+psycopg://...`` -> ``postgresql``); ConfigurationError if ``url`` is
    not a URL at all."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(f"store URL {url!r} is not a URL such as sqlite:///PATH")
    return url.split("://", 1)[0].split("+", 1)[0].lower()
