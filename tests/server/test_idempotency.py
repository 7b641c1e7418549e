"""Idempotency-Key: a retry is recognised by what it asks, not by how its JSON is written."""

from __future__ import annotations

from fastapi.testclient import TestClient

from convstore.server.idempotency import canonical_body

V1 = "/api/v1"


def test_the_same_json_written_another_way_is_the_same_request(alice: TestClient) -> None:
    cid = alice.post(f"{V1}/conversations", json={"name": "chat"}).json()["id"]
    path = f"{V1}/conversations/{cid}/messages"
    json_headers = {"Content-Type": "application/json", "Idempotency-Key": "retry-1"}
    first = alice.post(
        path, content=b'{"role":"user","content":{"a":1,"b":[1,2]}}', headers=json_headers
    )
    assert first.status_code == 201, first.text
    again = alice.post(
        path,
        content=b'{\n  "content": {"b": [1, 2], "a": 1},\n  "role": "user"\n}\n',
        headers=json_headers,
    )
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert alice.get(f"{V1}/conversations/{cid}").json()["message_count"] == 1
    other = alice.post(
        path, content=b'{"role":"user","content":{"a":1,"b":[2,1]}}', headers=json_headers
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_canonical_bodies() -> None:
    escaped, plain = b'{ "b": 1, "a": "\\u00e9" }', b'{"a":"\xc3\xa9","b":1}'
    assert canonical_body(escaped) == canonical_body(plain)
    assert canonical_body(b'{"a": 1}') != canonical_body(b'{"a": 1.0}')
    assert canonical_body(b"{not json") == b"{not json"
    assert canonical_body(b"\xff") == b"\xff"
    deep = b"[" * 100_000 + b"]" * 100_000
    assert canonical_body(deep) == deep
