"""Fixtures of the server tests: an app over a fresh store, and clients with API keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import convstore
from convstore import ConversationStore
from convstore.accounts import Accounts
from convstore.server import Rate, ServerSettings, create_app

GENEROUS = Rate(100_000, 60.0)


@pytest.fixture
def server_store(tmp_path: Path) -> Iterator[ConversationStore]:
    with convstore.open(f"sqlite:///{tmp_path / 'server.db'}") as store:
        yield store


@pytest.fixture
def settings() -> ServerSettings:
    return ServerSettings(
        read_rate=GENEROUS, write_rate=GENEROUS, chunk_rate=GENEROUS, poll_interval=0.05
    )


@pytest.fixture
def app_client(server_store: ConversationStore, settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(server_store, settings)) as client:
        yield client


def key_for(store: ConversationStore, user_id: str) -> str:
    accounts = Accounts(store)
    if accounts.get_user(user_id) is None:
        return accounts.add_user(user_id, user_id=user_id)[1]
    return accounts.issue_key(user_id)


@pytest.fixture
def alice(app_client: TestClient, server_store: ConversationStore) -> TestClient:
    app_client.headers["Authorization"] = f"Bearer {key_for(server_store, 'alice')}"
    return app_client


@pytest.fixture
def bob_headers(server_store: ConversationStore) -> dict[str, str]:
    return {"Authorization": f"Bearer {key_for(server_store, 'bob')}"}


@pytest.fixture
def admin_headers(server_store: ConversationStore) -> dict[str, str]:
    """The key of a server admin, who may read /metrics and the /health details."""
    _, key = Accounts(server_store).add_user("root", user_id="root", admin=True)
    return {"Authorization": f"Bearer {key}"}
