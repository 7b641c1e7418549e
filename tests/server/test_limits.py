"""Rate limits count per API key (a user's keys each have their own), and how
`convstore serve` sets them (--rate-limit, --demo-user)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from convstore import ConfigurationError, ConversationStore
from convstore.accounts import Accounts
from convstore.server import Rate, ServerSettings, create_app
from convstore.server.settings import DEMO_RATE, serve_rates
from tests.server.conftest import GENEROUS

CONVERSATIONS = "/api/v1/conversations"


def test_each_key_of_a_user_has_its_own_limit(server_store: ConversationStore) -> None:
    accounts = Accounts(server_store)
    _, laptop = accounts.add_user("Erin", user_id="erin")
    phone = accounts.issue_key("erin")
    settings = ServerSettings(read_rate=GENEROUS, write_rate=Rate(1, 60.0))
    with TestClient(create_app(server_store, settings)) as client:

        def write(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            made = client.post(CONVERSATIONS, json={"name": "n"}, headers=headers)
            return int(made.status_code)

        assert write(laptop) == 201
        assert write(laptop) == 429
        assert write(phone) == 201
        assert write(phone) == 429
        listed = client.get(CONVERSATIONS, headers={"Authorization": f"Bearer {phone}"})
        assert {c["owner_id"] for c in listed.json()["items"]} == {"erin"}


def test_no_write_limit_lets_every_write_through(server_store: ConversationStore) -> None:
    _, key = Accounts(server_store).add_user("Fay", user_id="fay")
    settings = ServerSettings(read_rate=Rate(1, 60.0), write_rate=None)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(server_store, settings)) as client:
        for _ in range(30):
            made = client.post(CONVERSATIONS, json={"name": "n"}, headers=headers)
            assert made.status_code == 201
        assert client.get(CONVERSATIONS, headers=headers).status_code == 200
        assert client.get(CONVERSATIONS, headers=headers).status_code == 429


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((None, None, None, False), (Rate(30, 60.0), Rate(10, 60.0))),
        ((None, None, None, True), (DEMO_RATE, DEMO_RATE)),
        ((None, None, 0, False), (Rate(30, 60.0), None)),
        ((None, None, 25, True), (DEMO_RATE, Rate(25, 60.0))),
        (("5/second", "2/hour", None, True), (Rate(5, 1.0), Rate(2, 3600.0))),
    ],
)
def test_serve_rates(
    options: tuple[str | None, str | None, int | None, bool],
    expected: tuple[Rate | None, Rate | None],
) -> None:
    read, write, limit, demo = options
    assert serve_rates(read, write, limit, demo=demo) == expected


def test_the_demo_limit_outlasts_a_walk_through() -> None:
    assert DEMO_RATE.count >= 100
    assert DEMO_RATE.period == 60.0


@pytest.mark.parametrize(("write", "limit"), [("3/minute", 5), (None, -1), ("often", None)])
def test_serve_rates_refuses_what_makes_no_sense(write: str | None, limit: int | None) -> None:
    with pytest.raises(ConfigurationError):
        serve_rates(None, write, limit, demo=False)
