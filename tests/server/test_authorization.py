"""Per-user isolation: user B gets 404 for every route on user A's conversation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from convstore import ConversationStore

V1 = "/api/v1/conversations"
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "{c}", None),
    ("GET", "{c}/metadata", None),
    ("PATCH", "{c}", {"name": "taken"}),
    ("DELETE", "{c}", None),
    ("POST", "{c}/restore", None),
    ("PUT", "{c}/state", {"state": "archived"}),
    ("POST", "{c}/messages", {"role": "user", "content": "intrusion"}),
    ("POST", "{c}/messages/batch", {"messages": [{"role": "user", "content": "x"}]}),
    ("GET", "{c}/messages", None),
    ("GET", "{c}/messages?ids={m}", None),
    ("GET", "{c}/messages/{m}", None),
    ("PATCH", "{c}/messages/{m}", {"content": "changed"}),
    ("DELETE", "{c}/messages/{m}", None),
    ("DELETE", "{c}/messages/{m}/pair", None),
    ("POST", "{c}/streams", {}),
    ("POST", "{c}/messages/{s}/chunks", {"chunks": [{"seq": 1, "delta": "x"}]}),
    ("GET", "{c}/messages/{s}/chunks", None),
    ("POST", "{c}/messages/{s}/finalize", {}),
    ("POST", "{c}/messages/{s}/abort", {}),
]


@pytest.mark.parametrize(
    ("method", "path", "payload"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_another_users_conversation_is_not_found(
    alice: TestClient,
    bob_headers: dict[str, str],
    server_store: ConversationStore,
    method: str,
    path: str,
    payload: dict[str, Any] | None,
) -> None:
    chat = alice.post(
        V1, json={"name": "private", "messages": [{"role": "user", "content": "secret"}]}
    )
    cid = chat.json()["id"]
    mid = alice.get(f"{V1}/{cid}/messages").json()["items"][0]["id"]
    sid = alice.post(f"{V1}/{cid}/streams", json={}).json()["id"]
    before = server_store.export_conversation(cid)
    url = f"{V1}/" + path.format(c=cid, m=mid, s=sid)
    response = alice.request(method, url, json=payload, headers=bob_headers)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] in ("CONVERSATION_NOT_FOUND", "MESSAGE_NOT_FOUND")
    assert server_store.export_conversation(cid) == before


def test_listing_searching_and_events_show_only_ones_own(
    alice: TestClient, bob_headers: dict[str, str]
) -> None:
    alice.post(V1, json={"name": "zebra", "messages": [{"role": "user", "content": "zebra"}]})
    assert alice.get(V1, headers=bob_headers).json()["items"] == []
    assert (
        alice.get("/api/v1/search", params={"q": "zebra"}, headers=bob_headers).json()["hits"] == []
    )
    assert len(alice.get("/api/v1/search", params={"q": "zebra"}).json()["hits"]) == 1
