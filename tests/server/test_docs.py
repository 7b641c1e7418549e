"""The API docs work offline: /docs and /redoc load every script and stylesheet from the
server itself, never from a CDN."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient


class _Assets(HTMLParser):
    """The URLs a page loads: script sources and linked stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


@pytest.mark.parametrize(
    ("page", "kinds"),
    [
        ("/docs", {"javascript", "css", "image/png"}),
        ("/redoc", {"javascript", "image/png"}),
    ],
)
def test_a_docs_page_loads_everything_from_this_server(
    app_client: TestClient, page: str, kinds: set[str]
) -> None:
    response = app_client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "http://" not in response.text and "https://" not in response.text
    assets = _Assets()
    assets.feed(response.text)
    assert len(assets.urls) == len(kinds)
    served = set()
    for url in assets.urls:
        assert url.startswith("/docs/assets/"), url
        asset = app_client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
        content_type = asset.headers["content-type"]
        served |= {kind for kind in kinds if kind in content_type}
    assert served == kinds
    assert "/openapi.json" in response.text
    assert app_client.get("/openapi.json").status_code == 200


def test_swagger_ui_is_version_5_which_reads_openapi_3_1(app_client: TestClient) -> None:
    assert app_client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = app_client.get("/docs/assets/swagger-ui-bundle.js").text
    assert re.search(r'"5\.\d+\.\d+"', bundle)


def test_a_missing_asset_is_a_plain_404(app_client: TestClient) -> None:
    response = app_client.get("/docs/assets/nothing.js")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
