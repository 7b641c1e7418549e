"""The REST API through httpx (FastAPI's TestClient) against the app."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from convstore import ConversationStore
from convstore.accounts import Accounts
from convstore.server import Rate, ServerSettings, auth, create_app
from tests.server.conftest import GENEROUS, key_for

V1 = "/api/v1"


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(f"{V1}/conversations", json={"name": "chat", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]


def test_a_conversation_and_its_messages(alice: TestClient) -> None:
    chat = create(alice, metadata={"k": 1}, messages=[{"role": "user", "content": "你好"}])
    assert (chat["owner_id"], chat["state"], chat["message_count"]) == ("alice", "active", 1)
    cid = chat["id"]
    reply = alice.post(
        f"{V1}/conversations/{cid}/messages",
        json={"role": "assistant", "content": {"type": "text", "text": "hi"}},
    )
    assert reply.status_code == 201
    batch = alice.post(
        f"{V1}/conversations/{cid}/messages/batch",
        json={"messages": [{"role": "user", "content": f"m{i}"} for i in range(3)]},
    )
    assert [m["seq"] for m in batch.json()] == [3, 4, 5]
    assert alice.get(f"{V1}/conversations/{cid}").json()["message_count"] == 5
    meta = alice.get(f"{V1}/conversations/{cid}/metadata").json()
    assert (meta["message_count"], meta["last_seq"], meta["state"]) == (5, 5, "active")
    assert "messages" not in meta

    messages = f"{V1}/conversations/{cid}/messages"
    oldest = alice.get(messages, params={"limit": 2}).json()
    assert [m["seq"] for m in oldest["items"]] == [1, 2]  # as store.get_messages
    later = alice.get(messages, params={"limit": 2, "after": oldest["next_cursor"]}).json()
    assert [m["seq"] for m in later["items"]] == [3, 4]
    last = alice.get(messages, params={"limit": 2, "after": later["next_cursor"]}).json()
    assert ([m["seq"] for m in last["items"]], last["next_cursor"]) == ([5], None)
    newest = alice.get(messages, params={"limit": 2, "newest_first": True}).json()
    assert [m["seq"] for m in newest["items"]] == [5, 4]
    older = alice.get(
        messages, params={"limit": 2, "newest_first": True, "before": newest["next_cursor"]}
    ).json()
    assert [m["seq"] for m in older["items"]] == [3, 2]
    ids = [m["id"] for m in batch.json()]
    picked = alice.get(
        f"{V1}/conversations/{cid}/messages", params={"ids": f"{ids[2]},{ids[0]},nope"}
    ).json()
    assert [m["id"] for m in picked["items"]] == [ids[0], ids[2]]

    mid = reply.json()["id"]
    edited = alice.patch(f"{V1}/conversations/{cid}/messages/{mid}", json={"content": "edited"})
    assert edited.json()["content"] == "edited"
    assert alice.get(f"{V1}/conversations/{cid}/messages/{mid}").json()["content"] == "edited"
    assert alice.delete(f"{V1}/conversations/{cid}/messages/{mid}").status_code == 204
    assert_error(alice.get(f"{V1}/conversations/{cid}/messages/{mid}"), 404, "MESSAGE_NOT_FOUND")
    pair = alice.delete(f"{V1}/conversations/{cid}/messages/{ids[0]}/pair")
    assert pair.json() == {"deleted": [ids[0]]}

    renamed = alice.patch(f"{V1}/conversations/{cid}", json={"name": "renamed"})
    assert renamed.json()["name"] == "renamed"
    assert alice.delete(f"{V1}/conversations/{cid}").status_code == 204
    assert_error(alice.get(f"{V1}/conversations/{cid}"), 404, "CONVERSATION_NOT_FOUND")
    restored = alice.post(f"{V1}/conversations/{cid}/restore")
    assert restored.json()["name"] == "renamed"
    assert alice.delete(f"{V1}/conversations/{cid}", params={"hard": True}).status_code == 204
    assert_error(alice.post(f"{V1}/conversations/{cid}/restore"), 404, "CONVERSATION_NOT_FOUND")


def test_conversations_page_with_cursors(alice: TestClient) -> None:
    made = [create(alice, name=f"c{i}")["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "order_by": "created_at", "descending": False}
        if cursor:
            params["cursor"] = cursor
        page = alice.get(f"{V1}/conversations", params=params).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    assert_error(alice.get(f"{V1}/conversations", params={"cursor": "bogus"}), 422, "INVALID_INPUT")
    assert_error(alice.get(f"{V1}/conversations", params={"limit": 201}), 422, "INVALID_INPUT")


def test_a_streamed_reply(alice: TestClient) -> None:
    cid = create(alice, messages=[{"role": "user", "content": "q"}])["id"]
    begun = alice.post(f"{V1}/conversations/{cid}/streams", json={"metadata": {"model": "m"}})
    assert begun.status_code == 201
    mid = begun.json()["id"]
    assert begun.json()["status"] == "streaming"
    path = f"{V1}/conversations/{cid}/messages/{mid}"
    first = alice.post(
        f"{path}/chunks", json={"chunks": [{"seq": 1, "delta": "Hel"}, {"seq": 2, "delta": "lo"}]}
    )
    assert [c["seq"] for c in first.json()["items"]] == [1, 2]
    again = alice.post(f"{path}/chunks", json={"chunks": [{"seq": 2, "delta": "lo"}]})
    assert again.status_code == 200  # a retried chunk is a no-op
    alice.post(f"{path}/chunks", json={"chunks": [{"seq": 3, "delta": "!"}]})
    assert_error(
        alice.post(f"{path}/chunks", json={"chunks": [{"seq": 9, "delta": "x"}]}),
        422,
        "INVALID_INPUT",
    )
    assert_error(
        alice.post(f"{path}/chunks", json={"chunks": [{"seq": 3, "delta": "?"}]}),
        409,
        "CONCURRENCY_CONFLICT",
    )
    missed = alice.get(f"{path}/chunks", params={"after": 1}).json()
    assert [c["delta"] for c in missed["items"]] == ["lo", "!"]
    done = alice.post(
        f"{path}/finalize", json={"usage": {"prompt_tokens": 2, "completion_tokens": 3}}
    ).json()
    assert (done["content"], done["status"]) == ("Hello!", "complete")
    chat = alice.get(f"{V1}/conversations/{cid}").json()
    assert (chat["state"], chat["completion_tokens"]) == ("awaiting_user", 3)
    other = alice.post(f"{V1}/conversations/{cid}/streams", json={}).json()["id"]
    aborted = alice.post(f"{V1}/conversations/{cid}/messages/{other}/abort", json={"reason": "x"})
    assert aborted.json()["status"] == "error"


def test_state_machine_over_http(alice: TestClient) -> None:
    cid = create(alice)["id"]
    moved = alice.put(f"{V1}/conversations/{cid}/state", json={"state": "archived"})
    assert moved.json()["state"] == "archived"
    assert_error(
        alice.put(f"{V1}/conversations/{cid}/state", json={"state": "awaiting_llm"}),
        409,
        "INVALID_STATE",
    )
    assert_error(
        alice.post(f"{V1}/conversations/{cid}/messages", json={"role": "user", "content": "x"}),
        409,
        "INVALID_STATE",
    )
    assert_error(
        alice.put(f"{V1}/conversations/{cid}/state", json={"state": "nonsense"}),
        422,
        "INVALID_INPUT",
    )


def test_search_over_http(alice: TestClient) -> None:
    cid = create(alice, messages=[{"role": "user", "content": "代码重构讨论 refactoring"}])["id"]
    found = alice.get(f"{V1}/search", params={"q": "重构"}).json()
    assert set(found) == {"hits", "next_cursor"}  # as store.search's SearchResults
    assert [h["conversation_id"] for h in found["hits"]] == [cid]
    assert found["hits"][0]["snippet"]["highlights"]
    assert found["next_cursor"] is None
    by_name = alice.get(f"{V1}/search", params={"q": "chat", "target": "conversations"}).json()
    assert by_name["hits"][0]["conversation"]["id"] == cid
    assert_error(alice.get(f"{V1}/search", params={"q": '"open'}), 422, "INVALID_INPUT")
    assert_error(
        alice.get(f"{V1}/search", params={"q": "x", "mode": "semantic"}), 422, "INVALID_CONFIG"
    )


def test_idempotency_key_replays_the_first_answer(alice: TestClient) -> None:
    cid = create(alice)["id"]
    path, message = f"{V1}/conversations/{cid}/messages", {"role": "user", "content": "once"}
    first = alice.post(path, json=message, headers={"Idempotency-Key": "k1"})
    second = alice.post(path, json=message, headers={"Idempotency-Key": "k1"})
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert alice.get(f"{V1}/conversations/{cid}").json()["message_count"] == 1
    reused = alice.post(
        path, json={"role": "user", "content": "other"}, headers={"Idempotency-Key": "k1"}
    )
    assert_error(reused, 422, "IDEMPOTENCY_KEY_REUSED")
    made = alice.post(f"{V1}/conversations", json={"name": "x"}, headers={"Idempotency-Key": "c"})
    again = alice.post(f"{V1}/conversations", json={"name": "x"}, headers={"Idempotency-Key": "c"})
    assert made.json() == again.json()
    assert_error(
        alice.post(path, json=message, headers={"Idempotency-Key": "bad key"}), 422, "INVALID_INPUT"
    )


def test_a_write_that_ran_but_was_not_remembered_is_not_repeated(
    alice: TestClient, server_store: ConversationStore
) -> None:
    cid = create(alice)["id"]
    path, message = f"{V1}/conversations/{cid}/messages", {"role": "user", "content": "once"}
    first = alice.post(path, json=message, headers={"Idempotency-Key": "crash"}).json()
    # as if the server died after the write, before it kept the answer
    assert server_store.delete_record("idempotency", "alice:crash")
    again = alice.post(path, json=message, headers={"Idempotency-Key": "crash"})
    assert again.json()["id"] == first["id"]
    assert alice.get(f"{V1}/conversations/{cid}").json()["message_count"] == 1


def test_errors_keep_to_the_envelope(alice: TestClient) -> None:
    assert_error(alice.get(f"{V1}/nowhere"), 404, "NOT_FOUND")
    assert_error(alice.post(f"{V1}/conversations", json={"nope": 1}), 422, "INVALID_INPUT")
    assert_error(
        alice.post(
            f"{V1}/conversations",
            content=b"{not json",
            headers={"content-type": "application/json"},
        ),
        422,
        "INVALID_INPUT",
    )
    assert_error(alice.post(f"{V1}/conversations", json={"name": "a\x00b"}), 422, "INVALID_INPUT")
    cid = create(alice)["id"]
    assert_error(
        alice.post(
            f"{V1}/conversations/{cid}/messages",
            content=b'{"role": "user", "content": "\\ud800"}',
            headers={"content-type": "application/json"},
        ),
        422,
        "INVALID_INPUT",
    )
    traced = alice.get(f"{V1}/conversations/missing", headers={"X-Request-ID": "trace-7"})
    assert traced.headers["X-Request-ID"] == "trace-7"
    assert traced.json()["error"]["request_id"] == "trace-7"
    assert (
        len(
            alice.get(f"{V1}/conversations", headers={"X-Request-ID": "x" * 500}).headers[
                "X-Request-ID"
            ]
        )
        == 32
    )


def test_keys_are_required_and_checked(
    app_client: TestClient, server_store: ConversationStore
) -> None:
    assert_error(app_client.get(f"{V1}/conversations"), 401, "UNAUTHORIZED")
    assert app_client.get(f"{V1}/conversations").headers["WWW-Authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer cs_nothing_here"}
    assert_error(app_client.get(f"{V1}/conversations", headers=bad), 401, "UNAUTHORIZED")
    assert_error(
        app_client.get(f"{V1}/conversations", headers={"X-User-ID": "alice"}), 401, "UNAUTHORIZED"
    )


def test_a_revoked_key_stops_working(
    app_client: TestClient, server_store: ConversationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.0)
    key = key_for(server_store, "carol")
    headers = {"Authorization": f"Bearer {key}"}
    assert app_client.get(f"{V1}/conversations", headers=headers).status_code == 200
    Accounts(server_store).revoke_key(key)
    assert_error(app_client.get(f"{V1}/conversations", headers=headers), 401, "UNAUTHORIZED")


def test_the_trusted_header_works_only_when_enabled(server_store: ConversationStore) -> None:
    settings = ServerSettings(read_rate=GENEROUS, write_rate=GENEROUS, trust_user_header=True)
    with TestClient(create_app(server_store, settings)) as client:
        made = client.post(f"{V1}/conversations", json={"name": "p"}, headers={"X-User-ID": "dave"})
        assert made.json()["owner_id"] == "dave"
        assert_error(client.get(f"{V1}/conversations"), 401, "UNAUTHORIZED")
        assert_error(
            client.get(f"{V1}/conversations", headers={"X-User-ID": "../x"}), 401, "UNAUTHORIZED"
        )


def test_rate_limits_answer_429_with_retry_after(server_store: ConversationStore) -> None:
    settings = ServerSettings(read_rate=Rate(3, 60.0), write_rate=Rate(1, 60.0))
    headers = {"Authorization": f"Bearer {key_for(server_store, 'erin')}"}
    with TestClient(create_app(server_store, settings)) as client:
        for _ in range(3):
            assert client.get(f"{V1}/conversations", headers=headers).status_code == 200
        limited = client.get(f"{V1}/conversations", headers=headers)
        assert_error(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["Retry-After"]) <= 20
        assert (
            client.post(f"{V1}/conversations", json={"name": "a"}, headers=headers).status_code
            == 201
        )
        assert_error(
            client.post(f"{V1}/conversations", json={"name": "b"}, headers=headers),
            429,
            "RATE_LIMITED",
        )
        other = {"Authorization": f"Bearer {key_for(server_store, 'frank')}"}
        assert client.get(f"{V1}/conversations", headers=other).status_code == 200


def test_bodies_over_the_limit_are_refused(server_store: ConversationStore) -> None:
    settings = ServerSettings(read_rate=GENEROUS, write_rate=GENEROUS, max_body_bytes=1000)
    headers = {"Authorization": f"Bearer {key_for(server_store, 'gina')}"}
    with TestClient(create_app(server_store, settings)) as client:
        big = client.post(f"{V1}/conversations", json={"name": "x" * 2000}, headers=headers)
        assert_error(big, 413, "PAYLOAD_TOO_LARGE")

        def chunked() -> Any:
            yield b'{"name": "'
            yield b"y" * 2000
            yield b'"}'

        streamed = client.post(
            f"{V1}/conversations",
            content=chunked(),
            headers={**headers, "content-type": "application/json"},
        )
        assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")
    assert server_store.count_conversations() == 0


def test_a_message_over_the_store_limit_is_refused(alice: TestClient) -> None:
    cid = create(alice)["id"]
    too_big = "z" * 1_048_577
    response = alice.post(
        f"{V1}/conversations/{cid}/messages", json={"role": "user", "content": too_big}
    )
    assert response.status_code in (413, 422)


def test_the_docs_and_the_schema_are_served(alice: TestClient) -> None:
    assert alice.get("/docs").status_code == 200
    assert alice.get("/openapi.json").json()["info"]["title"] == "convstore"


def test_unfinished_streams_are_marked_error_when_the_server_starts(
    server_store: ConversationStore, settings: ServerSettings
) -> None:
    chat = server_store.create_conversation("c").id
    left = server_store.begin_stream(chat)
    server_store.append_chunk(chat, left.id, "partial")
    with TestClient(create_app(server_store, settings)):
        recovered = server_store.get_message(chat, left.id)
    assert recovered is not None
    assert (recovered.status.value, recovered.content) == ("error", "partial")


def test_json_logs_carry_the_request_id() -> None:
    import json
    import logging

    from convstore.server.observability import JsonFormatter, request_id

    token = request_id.set("req-42")
    try:
        record = logging.LogRecord(
            "convstore.server", logging.INFO, __file__, 1, "hi %s", ("x",), None
        )
        record.fields = {"status": 201}
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert (line["message"], line["request_id"], line["status"]) == ("hi x", "req-42", 201)


def test_state_details_over_http(alice: TestClient) -> None:
    cid = create(alice)["id"]
    url = f"{V1}/conversations/{cid}/state"
    alice.put(url, json={"state": "active"})
    moved = alice.put(url, json={"state": "awaiting_llm", "details": {"request_id": "req-7"}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["state_details"] == {"request_id": "req-7"}
    assert alice.get(f"{V1}/conversations/{cid}").json()["state_details"] == {"request_id": "req-7"}
    assert_error(
        alice.put(url, json={"state": "processing_tool", "details": {"request_id": "x"}}),
        422,
        "INVALID_INPUT",
    )
