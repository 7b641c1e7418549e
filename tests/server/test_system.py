"""GET /health and GET /metrics: liveness for anyone, store-wide figures for server
admins only (or for everyone when the server is told to publish them)."""

from __future__ import annotations

from dataclasses import replace

from fastapi.testclient import TestClient

from convstore import ConversationStore
from convstore.server import ServerSettings, create_app
from tests.server.conftest import key_for

CREATED = 'method="POST",route="/api/v1/conversations",status="201"'


def test_anyone_gets_liveness_and_nothing_more(
    app_client: TestClient, server_store: ConversationStore
) -> None:
    server_store.for_user("someone").create_conversation("private")
    response = app_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    user = {"Authorization": f"Bearer {key_for(server_store, 'alice')}"}
    assert app_client.get("/health", headers=user).json() == {"status": "ok"}


def test_a_bad_key_is_refused_even_on_health(app_client: TestClient) -> None:
    response = app_client.get("/health", headers={"Authorization": "Bearer cs_no_such"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_metrics_need_an_admin(
    app_client: TestClient, server_store: ConversationStore, admin_headers: dict[str, str]
) -> None:
    anonymous = app_client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
    user = {"Authorization": f"Bearer {key_for(server_store, 'alice')}"}
    forbidden = app_client.get("/metrics", headers=user)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "FORBIDDEN"
    assert "convstore_http_requests_total" not in anonymous.text + forbidden.text


def test_an_admin_sees_store_wide_figures(
    app_client: TestClient, server_store: ConversationStore, admin_headers: dict[str, str]
) -> None:
    alice = {"Authorization": f"Bearer {key_for(server_store, 'alice')}"}
    bob = {"Authorization": f"Bearer {key_for(server_store, 'bob')}"}
    for headers in (alice, bob):
        made = app_client.post(
            "/api/v1/conversations",
            json={"name": "c", "messages": [{"role": "user", "content": "hi"}]},
            headers=headers,
        )
        assert made.status_code == 201
    health = app_client.get("/health", headers=admin_headers).json()
    assert (health["status"], health["conversations_count"], health["total_messages"]) == (
        "healthy",
        2,
        2,
    )
    assert health["disk_usage"] > 0
    assert app_client.get("/api/v1/conversations", headers=admin_headers).json()["items"] == []
    metrics = app_client.get("/metrics", headers=admin_headers)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert f"convstore_http_requests_total{{{CREATED}}} 2.0" in metrics.text
    assert (
        'convstore_store_operation_seconds_count{operation="create_conversation"} 2.0'
        in metrics.text
    )


def test_public_metrics_show_everything_to_everyone(
    server_store: ConversationStore, settings: ServerSettings
) -> None:
    server_store.create_conversation("c")
    with TestClient(create_app(server_store, replace(settings, public_metrics=True))) as client:
        health = client.get("/health").json()
        assert health["conversations_count"] == 1
        assert client.get("/metrics").status_code == 200


def test_behind_a_trusted_proxy_the_admin_is_an_account_flag(
    server_store: ConversationStore, settings: ServerSettings
) -> None:
    key_for(server_store, "carol")
    server_store.put_record("users", "root", {"name": "r", "created_at": 0.0, "is_admin": True})
    trusted = replace(settings, trust_user_header=True)
    with TestClient(create_app(server_store, trusted)) as client:
        assert client.get("/metrics", headers={"X-User-ID": "root"}).status_code == 200
        assert client.get("/metrics", headers={"X-User-ID": "carol"}).status_code == 403
        assert client.get("/metrics", headers={"X-User-ID": "stranger"}).status_code == 403
        assert client.get("/metrics").status_code == 401
        assert client.get("/health", headers={"X-User-ID": "carol"}).json() == {"status": "ok"}
