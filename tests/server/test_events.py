"""GET /api/v1/events refuses resume marks that are not event ids, the same way whether
they come as Last-Event-ID or as ?after= (the streams themselves are tested against a
real server in test_process.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from convstore import ConversationStore
from convstore.server import ServerSettings, create_app
from tests.server.conftest import key_for

EVENTS = "/api/v1/events"


def get_raw(
    store: ConversationStore, settings: ServerSettings, headers: dict[str, bytes]
) -> httpx.Response:
    """GET /api/v1/events with header bytes sent as they are (the TestClient would
    re-encode them as UTF-8, as no HTTP client on the wire has to)."""
    app = create_app(store, settings)
    sent = {b"Authorization": f"Bearer {key_for(store, 'alice')}".encode()}
    sent.update((name.encode(), value) for name, value in headers.items())

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(EVENTS, headers=sent)

    return asyncio.run(call())


@pytest.mark.timeout(30)  # were one accepted, the stream would stay open
@pytest.mark.parametrize(
    "value",
    [
        b"\xb2",  # latin-1 "²": str.isdigit() says yes, int() says no
        b"\xb9\xb2",  # "¹²"
        "١٢".encode(),  # Arabic-Indic digits, as UTF-8
        b"-1",
        b"1.5",
        b" 7",
        b"12345678901234567",  # 17 digits
        b"9007199254740992",  # 2**53: beyond any event id the API takes
    ],
)
def test_a_last_event_id_that_is_no_event_id_is_invalid_input(
    server_store: ConversationStore, settings: ServerSettings, value: bytes
) -> None:
    response = get_raw(server_store, settings, {"Last-Event-ID": value})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_INPUT"
    assert error["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("value", ["²", "-1", "x", "9007199254740992"])
def test_after_is_refused_alike(alice: TestClient, value: str) -> None:
    response = alice.get(EVENTS, params={"after": value})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "INVALID_INPUT"


def test_the_schema_states_what_a_resume_mark_is(alice: TestClient) -> None:
    operation = alice.get("/openapi.json").json()["paths"][EVENTS]["get"]
    by_name = {p["name"]: p["schema"] for p in operation["parameters"]}
    header = by_name["last-event-id"]["anyOf"][0]
    assert header["pattern"] == "^[0-9]{1,16}$"
    after = by_name["after"]["anyOf"][0]
    assert (after["minimum"], after["maximum"]) == (0, 2**53 - 1)
