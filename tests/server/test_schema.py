"""Schemathesis against the OpenAPI document, with every check it has: generated
requests never cause a 5xx, requests the schema allows are accepted, requests it
forbids are refused, every status and body is documented, and auth is enforced."""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

import convstore
from convstore import ConversationNotFoundError, InvalidInputError
from convstore.accounts import Accounts
from convstore.content_types.schemas import BUILT_IN_TYPES
from convstore.ids import scoped_id
from convstore.search.embedding import HashingEmbedder
from convstore.search.query import parse_query
from convstore.server import ServerSettings, create_app
from convstore.server.idempotency import KEY_PATTERN
from convstore.server.schemas import ID_PATTERN, MAX_INT
from tests.server.conftest import GENEROUS

_store = convstore.open("memory://")
_app = create_app(
    _store, ServerSettings(read_rate=GENEROUS, write_rate=GENEROUS, chunk_rate=GENEROUS)
)
_, _KEY = Accounts(_store).add_user("fuzzer", user_id="fuzzer", admin=True)
_fuzzer = _store.for_user("fuzzer")
schema = schemathesis.openapi.from_asgi("/openapi.json", _app).exclude(path="/api/v1/events")
# The store refuses text holding NUL by design (the schema says so in words): none is sent.
schema.config.generation.update(allow_x00=False)


@schema.auth()
class ApiKey:
    """The fuzzer's key, sent as the schema's security scheme says."""

    def get(self, case: Any, ctx: Any) -> str:
        return _KEY

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _seed_id(chosen: str) -> str:
    """The id the fuzzer's view stores for an id it chose (ids are scoped per user)."""
    return scoped_id(chosen, str(_fuzzer.user_id))


def _fresh_seed() -> None:
    """A conversation "seed" with a question and a reply still streaming, as it was."""
    with contextlib.suppress(ConversationNotFoundError):  # out of the trash, if put there
        _fuzzer.restore_conversation(_seed_id("seed"))
    _fuzzer.delete_conversation(_seed_id("seed"), soft=False)
    seed = _fuzzer.create_conversation(
        "seed",
        conversation_id="seed",
        initial_messages=[{"role": "user", "content": "hello", "id": "seed-question"}],
    )
    _fuzzer.begin_stream(seed.id, message_id="seed-reply")


def _valid(pattern: str, value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def _like_a_client(case: Any) -> None:
    """What a real client sends where the schema allows more than the server can know:
    valid ids name the seed conversation and its messages (so answers other than 404 are
    checked too), a valid cursor is one the server never gave (so it is left out), a
    valid Idempotency-Key is new for each request, and valid chunks take the next numbers
    of the reply. Invalid values are left alone."""
    path = case.path_parameters or {}
    if _valid(ID_PATTERN, path.get("conversation_id")):
        path["conversation_id"] = _seed_id("seed")
    if _valid(ID_PATTERN, path.get("message_id")):
        streaming = case.path.endswith(("/chunks", "/finalize", "/abort"))
        path["message_id"] = _seed_id("seed-reply" if streaming else "seed-question")
    if case.query and _valid(r"[A-Za-z0-9_-]+", case.query.get("cursor")):
        del case.query["cursor"]
    if case.headers and _valid(KEY_PATTERN, case.headers.get("Idempotency-Key")):
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    for message in _messages_in(case.body):  # content fitting each built-in type is
        kind = message.get("type")  # the contract suite's; here such types stay unchecked
        if isinstance(kind, str) and kind in BUILT_IN_TYPES and kind != "text":
            message["type"] = f"x-{kind}"
    chunks = case.body.get("chunks") if isinstance(case.body, dict) else None
    if isinstance(chunks, list) and all(_valid_chunk(c) for c in chunks):
        for seq, chunk in enumerate(chunks, start=1):  # the next numbers, as a client counts
            chunk["seq"] = seq


def _messages_in(body: object) -> list[dict[str, Any]]:
    """The new messages a request body holds (itself, or its list of messages)."""
    if not isinstance(body, dict):
        return []
    listed = body.get("messages")
    found = listed if isinstance(listed, list) else [body]
    return [m for m in found if isinstance(m, dict)]


def _valid_chunk(chunk: object) -> bool:
    seq = chunk.get("seq") if isinstance(chunk, dict) else None
    if not isinstance(seq, int | float) or isinstance(seq, bool):
        return False
    return float(seq).is_integer() and 1 <= seq <= MAX_INT


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_keeps_to_its_schema(case: Any) -> None:
    _fresh_seed()
    _like_a_client(case)
    if case.operation.path != "/api/v1/search":
        # Two rules of the store that a JSON schema cannot state for free-form JSON (see
        # the descriptions): integers inside content and metadata are 64-bit, and a
        # state's details have that state's fields. A refusal must be one of those.
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        if response.status_code == 422 and case.meta.generation.mode.is_positive:
            message = response.json()["error"]["message"]
            rules = ("holds an integer outside", "wrong details for state", "takes no details")
            assert any(rule in message for rule in rules), message
        return
    # A search query has a grammar (quotes, exclusions, stars) that a JSON schema cannot
    # state: a query the schema allows may still be malformed, and refused (422). So here
    # the check is that every such refusal is the query parser's own.
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    if response.status_code == 422 and case.meta.generation.mode.is_positive:
        with pytest.raises(InvalidInputError):
            parse_query(case.query["q"])


def _operation(path: str, method: str) -> dict[str, Any]:
    document: dict[str, Any] = _app.openapi()
    return dict(document["paths"][path][method])


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p["schema"] for p in operation["parameters"] if p["name"] == name]
    return dict(found.get("anyOf", [found])[0])


def _property(model: str, name: str) -> dict[str, Any]:
    found = _app.openapi()["components"]["schemas"][model]["properties"][name]
    return dict(found.get("anyOf", [found])[0])


def test_the_schema_states_the_limits() -> None:
    message = _operation("/api/v1/conversations/{conversation_id}/messages/{message_id}", "get")
    for name in ("conversation_id", "message_id"):
        assert _parameter(message, name)["pattern"] == ID_PATTERN
    listing = _operation("/api/v1/conversations/{conversation_id}/messages", "get")
    assert (_parameter(listing, "limit")["minimum"], _parameter(listing, "limit")["maximum"]) == (
        1,
        200,
    )
    assert _parameter(listing, "after")["maximum"] == MAX_INT
    assert _parameter(listing, "newest_first")["default"] is False
    chunks = _operation(
        "/api/v1/conversations/{conversation_id}/messages/{message_id}/chunks", "get"
    )
    assert _parameter(chunks, "limit")["maximum"] == 10_000
    assert _property("ChunkIn", "seq")["minimum"] == 1
    assert _property("StateIn", "expected_version")["minimum"] == 0
    for tokens in ("prompt_tokens", "completion_tokens"):
        assert (
            _property("UsageIn", tokens)["minimum"],
            _property("UsageIn", tokens)["maximum"],
        ) == (
            0,
            MAX_INT,
        )
    assert _property("ConversationIn", "name")["maxLength"] == 1000
    assert _property("ConversationIn", "description")["maxLength"] == 100_000
    assert _property("MessageIn", "type")["maxLength"] == 64
    assert _property("FinalizeIn", "finish_reason")["maxLength"] == 64
    assert _property("MessagesIn", "messages")["maxItems"] == 1000
    create = _operation("/api/v1/conversations", "post")
    assert _parameter(create, "Idempotency-Key")["pattern"] == KEY_PATTERN
    search = _operation("/api/v1/search", "get")
    assert _parameter(search, "mode")["enum"] == ["text"]  # this store has no embedder
    assert _parameter(search, "q")["maxLength"] == 1000
    assert "NUL" in _app.openapi()["info"]["description"]


def test_the_schema_says_how_callers_authenticate() -> None:
    document = _app.openapi()
    assert document["components"]["securitySchemes"]["caller"]["scheme"] == "bearer"
    assert _operation("/api/v1/conversations", "get")["security"] == [{"caller": []}]
    assert _operation("/health", "get")["security"] == [{}, {"caller": []}]
    assert _operation("/metrics", "get")["security"] == [{"caller": []}]


def test_what_the_schema_says_follows_how_the_server_runs() -> None:
    with convstore.open("memory://", embedder=HashingEmbedder()) as store:
        served = ServerSettings(trust_user_header=True, write_rate=None, max_body_bytes=5000)
        document = create_app(store, served).openapi()
    rules = document["info"]["description"]
    assert "X-User-ID" in rules
    assert "reads 30 per 60 s, writes unlimited" in rules
    assert "at most 5000 bytes" in rules
    scheme = document["components"]["securitySchemes"]["caller"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-User-ID")
    (mode,) = [
        p for p in document["paths"]["/api/v1/search"]["get"]["parameters"] if p["name"] == "mode"
    ]
    assert mode["schema"]["enum"] == ["text", "semantic", "hybrid"]
