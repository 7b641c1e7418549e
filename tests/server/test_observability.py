"""Request ids: every response carries X-Request-ID, and every error body and every log
line written while serving a request carry the same id, failures included."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from convstore import ConversationStore
from convstore.server.observability import configure_logging

V1 = "/api/v1"


@pytest.fixture
def restored_loggers() -> Iterator[None]:
    """Put back the handlers configure_logging replaces."""
    names = ("convstore", "uvicorn.error")
    saved = [
        (logging.getLogger(n).handlers, logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in names
    ]
    yield
    for name, (handlers, level, propagate) in zip(names, saved, strict=True):
        logger = logging.getLogger(name)
        logger.handlers, logger.level, logger.propagate = handlers, level, propagate


def logged(capsys: pytest.CaptureFixture[str], as_json: bool) -> list[dict[str, Any]]:
    """The log lines written to stderr so far, as (request id, message, traceback?)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    if as_json:
        return [json.loads(line) for line in lines]
    found: list[dict[str, Any]] = []
    for line in lines:
        if " [" not in line or "] " not in line:  # a traceback line of the entry above
            found[-1]["exception"] = True
            continue
        rid, message = line.split(" [", 1)[1].split("] ", 1)
        found.append({"request_id": rid, "message": message})
    return found


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "plain"])
def test_an_unexpected_failure_keeps_its_request_id_everywhere(
    alice: TestClient,
    server_store: ConversationStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restored_loggers: None,
    as_json: bool,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the disk caught fire")

    configure_logging(as_json=as_json)
    monkeypatch.setattr(type(server_store), "list_conversations", broken)
    capsys.readouterr()
    response = alice.get(f"{V1}/conversations")
    assert response.status_code == 500
    rid = response.headers["X-Request-ID"]
    assert rid
    assert response.json() == {
        "error": {
            "code": "INTERNAL_ERROR",
            "message": "the server failed; the request id is in the logs",
            "request_id": rid,
        }
    }
    assert "fire" not in response.text
    lines = logged(capsys, as_json)
    assert [line["request_id"] for line in lines] == [rid, rid]
    failure, access = lines
    assert "exception" in failure
    assert access["message"].startswith("GET /api/v1/conversations 500")


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "plain"])
def test_each_request_logs_its_own_id(
    alice: TestClient,
    capsys: pytest.CaptureFixture[str],
    restored_loggers: None,
    as_json: bool,
) -> None:
    configure_logging(as_json=as_json)
    capsys.readouterr()
    made = alice.post(f"{V1}/conversations", json={"name": "x"}, headers={"X-Request-ID": "r-1"})
    missing = alice.get(f"{V1}/conversations/nope")
    refused = alice.get(f"{V1}/conversations", headers={"Authorization": "Bearer nope"})
    assert made.headers["X-Request-ID"] == "r-1"
    ids = [r.headers["X-Request-ID"] for r in (made, missing, refused)]
    assert len(set(ids)) == 3
    for response in (missing, refused):
        assert response.json()["error"]["request_id"] == response.headers["X-Request-ID"]
    lines = logged(capsys, as_json)
    operation, *access = lines  # the store's operation log line comes before the access line
    assert operation["request_id"] == "r-1"
    assert operation["message"].startswith("conversation.created ")
    assert [line["request_id"] for line in access] == ids
    if as_json:
        assert operation["operation"] == "conversation.created"
        assert [line["status"] for line in access] == [201, 404, 401]


def test_the_metrics_count_failures_too(
    alice: TestClient,
    server_store: ConversationStore,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(type(server_store), "list_conversations", broken)
    assert alice.get(f"{V1}/conversations").status_code == 500
    monkeypatch.undo()
    metrics = alice.get("/metrics", headers=admin_headers).text
    assert (
        'convstore_http_requests_total{method="GET",route="/api/v1/conversations",status="500"} 1.0'
        in metrics
    )
