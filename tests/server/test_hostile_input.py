"""Hostile bodies and query values over HTTP: a 4xx with the error envelope, or a 2xx
whose record holds exactly what was sent; never a 500, and the store stays readable."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from convstore import ConversationStore
from convstore.archive import export_store, verify_archive
from convstore.server.schemas import MAX_INT  # 2**53 - 1: what every JSON reader holds
from tests.hostile import CONTENT, INTEGERS, MESSAGES, OBJECTS, TEXT, USAGE, canonical, raw_json

V1 = "/api/v1"
JSON_HEADERS = {"content-type": "application/json"}


def send(client: TestClient, method: str, path: str, body: Any) -> Any:
    """The response to ``body`` sent as raw JSON text (NaN, escaped surrogates, long
    integers kept as a hostile client writes them); a 2xx body is returned as JSON."""
    response = client.request(method, f"{V1}{path}", content=raw_json(body), headers=JSON_HEADERS)
    return answered(response)


def answered(response: Any) -> Any:
    """The JSON of a 2xx; for a 4xx, None after checking the envelope; never a 5xx."""
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"]
        return None
    return response.json()


def same_message(found: dict[str, Any], sent: dict[str, Any]) -> None:
    assert canonical(found["content"]) == canonical(sent["content"])
    assert canonical(found["metadata"]) == canonical(sent.get("metadata") or {})
    assert found["type"] == sent.get("type", "text")


def new_conversation(client: TestClient) -> str:
    return str(client.post(f"{V1}/conversations", json={"name": "plain"}).json()["id"])


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # bounded time even when failing
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_hostile_bodies_never_cause_a_500(alice: TestClient, data: st.DataObject) -> None:
    def draw(strategy: st.SearchStrategy[Any]) -> Any:
        """A value as the server reads it (a surrogate pair escaped in JSON text is one
        character once decoded), to compare what comes back with."""
        return json.loads(raw_json(data.draw(strategy)))

    first = draw(st.lists(MESSAGES, max_size=2))
    body = {"name": draw(TEXT), "metadata": draw(OBJECTS), "messages": first}
    created = send(alice, "POST", "/conversations", body)
    cid = new_conversation(alice) if created is None else created["id"]
    if created is not None:
        assert (created["name"], canonical(created["metadata"])) == (
            body["name"],
            canonical(body["metadata"] or {}),
        )
    message = draw(MESSAGES)
    appended = send(alice, "POST", f"/conversations/{cid}/messages", message)
    if appended is not None:
        same_message(appended, message)
        stored = alice.get(f"{V1}/conversations/{cid}/messages/{appended['id']}").json()
        same_message(stored, message)
        edit = {"content": draw(CONTENT), "metadata": draw(OBJECTS)}
        edited = send(alice, "PATCH", f"/conversations/{cid}/messages/{appended['id']}", edit)
        if edited is not None:
            same_message(edited, {**edit, "type": message.get("type", "text")})
    patch = {"name": draw(st.none() | TEXT), "metadata": draw(OBJECTS)}
    send(alice, "PATCH", f"/conversations/{cid}", patch)
    stream(alice, cid, data)
    for path in (f"/conversations/{cid}/messages", "/conversations"):
        answered(alice.get(f"{V1}{path}", params=hostile_query(path, data)))


def stream(client: TestClient, cid: str, data: st.DataObject) -> None:
    """A streamed reply with hostile metadata, chunks and usage."""
    begun = send(client, "POST", f"/conversations/{cid}/streams", {"metadata": data.draw(OBJECTS)})
    if begun is None:
        return
    mid = begun["id"]
    deltas = data.draw(st.lists(TEXT, min_size=1, max_size=3))
    chunks = [{"seq": i, "delta": d} for i, d in enumerate(deltas, start=1)]
    if send(client, "POST", f"/conversations/{cid}/messages/{mid}/chunks", {"chunks": chunks}):
        found = client.get(f"{V1}/conversations/{cid}/messages/{mid}/chunks").json()["items"]
        assert [c["delta"] for c in found] == deltas
    answered(
        client.get(
            f"{V1}/conversations/{cid}/messages/{mid}/chunks",
            params={"after": data.draw(INTEGERS)},
        )
    )
    finish = {"finish_reason": data.draw(TEXT), "usage": data.draw(USAGE)}
    if send(client, "POST", f"/conversations/{cid}/messages/{mid}/finalize", finish) is None:
        send(client, "POST", f"/conversations/{cid}/messages/{mid}/abort", {})


def hostile_query(path: str, data: st.DataObject) -> dict[str, Any]:
    """Query values past the 64-bit range for a list of messages or conversations."""
    if path.endswith("/messages"):
        return {data.draw(st.sampled_from(["before", "after"])): data.draw(INTEGERS)}
    offset = json.dumps({"o": data.draw(INTEGERS)}).encode()
    return {"cursor": base64.urlsafe_b64encode(offset).decode().rstrip("=")}


# the defects this hardening fixed, each as it was found ----------------------------------


def test_a_lone_surrogate_in_usage_is_refused_and_stores_nothing(
    alice: TestClient, server_store: ConversationStore, tmp_path: Path
) -> None:
    cid = new_conversation(alice)
    body = b'{"role":"assistant","content":"x","usage":{"model":"\\ud800"}}'
    response = alice.post(f"{V1}/conversations/{cid}/messages", content=body, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text[:300]
    assert response.json()["error"]["code"] == "INVALID_INPUT"
    assert "usage.model" in response.json()["error"]["message"]
    assert alice.get(f"{V1}/conversations/{cid}/messages").json()["items"] == []
    export_store(server_store, tmp_path / "export.jsonl")
    verify_archive(tmp_path / "export.jsonl")


def test_integers_past_64_bits_are_refused_with_422(alice: TestClient) -> None:
    cid = new_conversation(alice)
    too_big = {"role": "assistant", "content": "x", "usage": {"prompt_tokens": MAX_INT + 1}}
    refused(alice.post(f"{V1}/conversations/{cid}/messages", json=too_big))
    largest = {**too_big, "usage": {"prompt_tokens": MAX_INT}}
    assert alice.post(f"{V1}/conversations/{cid}/messages", json=largest).status_code == 201
    mid = alice.post(f"{V1}/conversations/{cid}/streams", json={}).json()["id"]
    reply = f"{V1}/conversations/{cid}/messages/{mid}"
    refused(alice.post(f"{reply}/finalize", json={"usage": {"completion_tokens": 2**63}}))
    refused(alice.get(f"{reply}/chunks", params={"after": 2**63}))
    for side in ("before", "after"):
        refused(alice.get(f"{V1}/conversations/{cid}/messages", params={side: 2**63}))
    cursor = base64.urlsafe_b64encode(json.dumps({"o": 2**63}).encode()).decode().rstrip("=")
    refused(alice.get(f"{V1}/conversations", params={"cursor": cursor}))


def refused(response: Any) -> None:
    assert response.status_code == 422, response.text[:300]
    assert response.json()["error"]["code"] == "INVALID_INPUT"


def test_a_huge_metadata_key_costs_no_cpu_to_refuse(alice: TestClient) -> None:
    cid = new_conversation(alice)
    body = json.dumps({"metadata": {"k" * 800_000: [0] * 300_000}}).encode()  # 1.4 MB
    started = time.process_time()
    response = alice.patch(f"{V1}/conversations/{cid}", content=body, headers=JSON_HEADERS)
    spent = time.process_time() - started
    refused(response)
    assert "1024" in response.json()["error"]["message"]
    assert spent < 1.5, spent  # it took 8 s of CPU when a path was built per item


def test_the_schema_states_the_upper_bounds(alice: TestClient) -> None:
    schema = alice.get("/openapi.json").json()
    parts = schema["components"]["schemas"]
    assert parts["UsageIn"]["properties"]["prompt_tokens"]["maximum"] == MAX_INT
    assert parts["ChunkIn"]["properties"]["seq"]["maximum"] == MAX_INT
    listing = schema["paths"][f"{V1}/conversations/{{conversation_id}}/messages"]["get"]
    bounds = {p["name"]: p["schema"] for p in listing["parameters"]}
    for side in ("before", "after"):
        assert any(s.get("maximum") == MAX_INT for s in bounds[side]["anyOf"])
