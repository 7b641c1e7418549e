"""A real `convstore serve` process on 127.0.0.1, called over HTTP: REST, SSE with
resume, events from other processes, many idle streams, and a crash mid-stream."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import convstore
from convstore.accounts import Accounts

pytestmark = pytest.mark.slow
GENEROUS = {
    "CONVSTORE_READ_RATE": "1000000/minute",
    "CONVSTORE_WRITE_RATE": "1000000/minute",
    "CONVSTORE_CHUNK_RATE": "1000000/minute",
}


@dataclass
class Server:
    url: str
    store_url: str
    key: str
    process: subprocess.Popen[str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(store_url: str, key: str | None = None) -> Server:
    port = free_port()
    command = [
        sys.executable, "-m", "convstore", "serve", "--url", store_url, "--port", str(port),
        "--demo-user", "--heartbeat", "0.5", "--poll-interval", "0.05",
    ]  # fmt: skip
    env = {**os.environ, **GENEROUS, "COLUMNS": "40"}  # a narrow terminal wraps no key
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    found = key
    for line in process.stdout:
        match = re.search(r"(cs_[A-Za-z0-9_-]+)", line)
        if match:
            found = match.group(1)
        if "convstore serving" in line:
            break
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                assert found is not None
                return Server(url, store_url, found, process)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not start")


def stop(server: Server, sig: int = signal.SIGTERM) -> None:
    server.process.send_signal(sig)
    server.process.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start(f"sqlite:///{tmp_path / 'served.db'}")
    yield running
    stop(running)


def events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    """Read ``count`` events off an open SSE response."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith(":") or line.startswith("retry:"):
            continue
        if line == "":
            if current:
                current["data"] = json.loads(current["data"])
                found.append(current)
                current = {}
                if len(found) == count:
                    return found
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    raise AssertionError(f"the stream ended after {len(found)} events")


def test_rest_over_a_real_socket(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        made = client.post("/api/v1/conversations", json={"name": "real"})
        assert made.status_code == 201
        assert made.headers["X-Request-ID"]
        listed = client.get("/api/v1/conversations").json()["items"]
        assert [c["id"] for c in listed] == [made.json()["id"]]
        assert (
            client.get("/api/v1/conversations", headers={"Authorization": "Bearer x"}).status_code
            == 401
        )


def test_events_arrive_in_order_and_resume_without_loss(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as client:
        with client.stream("GET", "/api/v1/events") as stream:
            cid = client.post("/api/v1/conversations", json={"name": "e"}).json()["id"]
            client.post(
                f"/api/v1/conversations/{cid}/messages", json={"role": "user", "content": "1"}
            )
            seen = events(stream, 3)
        assert [e["event"] for e in seen] == [
            "conversation.created",
            "state.changed",
            "messages.appended",
        ]
        ids = [int(e["id"]) for e in seen]
        assert ids == sorted(ids)
        # while disconnected, more happens
        for n in range(2, 5):
            client.post(
                f"/api/v1/conversations/{cid}/messages", json={"role": "user", "content": str(n)}
            )
        resume = {"Last-Event-ID": seen[-1]["id"]}
        with client.stream("GET", "/api/v1/events", headers=resume) as stream:
            missed = events(stream, 3)
        assert [e["data"]["first_seq"] for e in missed] == [2, 3, 4]
        assert int(missed[0]["id"]) > ids[-1]


def test_a_stream_shows_only_its_users_changes(server: Server) -> None:
    with convstore.open(server.store_url) as store:
        _, bob_key = Accounts(store).add_user("Bob", user_id="bob")
    bob = {"Authorization": f"Bearer {bob_key}"}
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as client:
        with client.stream("GET", "/api/v1/events") as stream:
            client.post("/api/v1/conversations", json={"name": "bob's"}, headers=bob)
            mine = client.post("/api/v1/conversations", json={"name": "mine"}).json()["id"]
            (event,) = events(stream, 1)
        assert event["data"]["conversation_id"] == mine


def test_a_chunk_written_by_another_process_reaches_a_subscriber(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as client:
        cid = client.post("/api/v1/conversations", json={"name": "s"}).json()["id"]
        mid = client.post(f"/api/v1/conversations/{cid}/streams", json={}).json()["id"]
        with client.stream("GET", "/api/v1/events") as stream:
            writer = f"""
import convstore
with convstore.open({server.store_url!r}) as store:
    store.append_chunk({cid!r}, {mid!r}, "from elsewhere", seq=1)
"""
            subprocess.run([sys.executable, "-c", writer], check=True)
            (event,) = events(stream, 1)
        assert (event["event"], event["data"]["message_id"]) == ("chunks.appended", mid)
        pulled = client.get(
            f"/api/v1/conversations/{cid}/messages/{mid}/chunks", params={"after": 0}
        )
        assert [c["delta"] for c in pulled.json()["items"]] == ["from elsewhere"]


def test_a_thousand_idle_streams_leave_rest_answering(server: Server) -> None:
    async def main() -> None:
        limits = httpx.Limits(max_connections=1100, max_keepalive_connections=1100)
        timeout = httpx.Timeout(30)
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.headers, limits=limits, timeout=timeout
        ) as client:
            async with asyncio.TaskGroup() as group:
                opened = [group.create_task(_open_stream(client)) for _ in range(1000)]
            streams = [task.result() for task in opened]
            started = time.monotonic()
            made = await client.post("/api/v1/conversations", json={"name": "busy"})
            assert made.status_code == 201
            assert (await client.get("/api/v1/conversations")).status_code == 200
            assert time.monotonic() - started < 5
            heard = await asyncio.gather(*(_next_event(s) for s in streams))
            assert all(e == "conversation.created" for e in heard)
            for _, context in streams:
                await context.__aexit__(None, None, None)

    asyncio.run(main())


async def _open_stream(client: httpx.AsyncClient) -> tuple[Any, Any]:
    context = client.stream("GET", "/api/v1/events")
    response = await context.__aenter__()
    assert response.status_code == 200
    lines = response.aiter_lines()
    assert (await anext(lines)).startswith("retry:")
    return lines, context


async def _next_event(stream: tuple[Any, Any]) -> str:
    lines, _ = stream
    async for line in lines:
        if line.startswith("event: "):
            return str(line.removeprefix("event: "))
    raise AssertionError("the stream ended")


def test_a_reply_left_streaming_by_a_crash_is_marked_error_on_restart(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'crash.db'}"
    first = start(store_url)
    with httpx.Client(base_url=first.url, headers=first.headers) as client:
        cid = client.post("/api/v1/conversations", json={"name": "c"}).json()["id"]
        mid = client.post(f"/api/v1/conversations/{cid}/streams", json={}).json()["id"]
        client.post(
            f"/api/v1/conversations/{cid}/messages/{mid}/chunks",
            json={"chunks": [{"seq": 1, "delta": "half "}, {"seq": 2, "delta": "done"}]},
        )
    stop(first, signal.SIGKILL)
    second = start(store_url, key=first.key)
    try:
        with httpx.Client(base_url=second.url, headers=second.headers) as client:
            message = client.get(f"/api/v1/conversations/{cid}/messages/{mid}").json()
            assert (message["status"], message["content"]) == ("error", "half done")
            chunks = client.get(f"/api/v1/conversations/{cid}/messages/{mid}/chunks").json()
            assert len(chunks["items"]) == 2
    finally:
        stop(second)
    with convstore.open(store_url) as store:
        assert store.get_conversation(cid).state == "error"  # type: ignore[union-attr]
