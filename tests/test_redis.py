"""Redis as a shared cache and change announcer, against real Redis servers: the one at
127.0.0.1:6379, and private ones started (and stopped mid-test) on free loopback ports."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import convstore
from convstore import ConversationStore
from convstore.events import ChangeHub
from convstore.redis_link import RedisLink

REDIS = "redis://127.0.0.1:6379/0"


def store_at(path: Path, redis_url: str = REDIS) -> ConversationStore:
    return convstore.open(f"sqlite:///{path / 'store.db'}", redis_url=redis_url)


def test_processes_share_cached_branches_and_never_read_stale(tmp_path: Path) -> None:
    with store_at(tmp_path) as first, store_at(tmp_path) as second:
        assert first.redis is not None and second.redis is not None
        chat = first.create_conversation("c").id
        contents = ["你好 🌍", {"n": 2.408494207764543e16, "k": [1, None, True]}, ["x"]]
        first.append_messages(chat, [{"role": "user", "content": c} for c in contents])
        written = first.get_messages(chat)  # read once: now cached in Redis
        assert second.get_messages(chat) == written  # exact, from Redis
        assert second.redis.hits == 1
        second.append_message(chat, "assistant", "newer")
        assert [m.content for m in first.get_messages(chat)][-1] == "newer"  # not stale
        assert first.health_check()["redis"]["available"] is True


def test_writes_in_another_process_wake_subscribers_at_once(tmp_path: Path) -> None:
    with store_at(tmp_path) as store:
        chat = store.create_conversation("c").id
        hub = ChangeHub(store, poll_interval=60)  # polling alone would take a minute
        with hub.subscribe() as subscription:
            time.sleep(0.3)  # the Redis listener subscribes
            writer = f"""
import convstore
with convstore.open({f"sqlite:///{tmp_path / 'store.db'}"!r}, redis_url={REDIS!r}) as store:
    store.append_message({chat!r}, "user", "elsewhere")
"""
            subprocess.run([sys.executable, "-c", writer], check=True)
            started = time.monotonic()
            kinds: list[str] = []
            while "messages.appended" not in kinds and time.monotonic() - started < 10:
                kinds += [c.kind for c in subscription.get(1)]
        hub.close()
    assert "messages.appended" in kinds


class PrivateRedis:
    """A redis-server of this test's own, on a free loopback port."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(250):
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def test_redis_going_away_costs_nothing_but_the_cache(
    tmp_path: Path,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("convstore.redis_link._FIRST_PAUSE", 0.05)
    url = private_redis.url
    with store_at(tmp_path, url) as store, store_at(tmp_path, url) as other:
        assert store.redis is not None and other.redis is not None
        chat = store.create_conversation("c").id
        store.append_message(chat, "user", "before")
        store.get_messages(chat)
        private_redis.stop()
        with caplog.at_level(logging.WARNING, logger="convstore"):
            for i in range(5):  # no error reaches the caller, and reads stay current
                store.append_message(chat, "user", f"during {i}")
                assert store.get_messages(chat)[-1].content == f"during {i}"
            assert caplog.text.count("unavailable") == 1
            assert store.health_check()["status"] == "healthy"
            private_redis.start()  # and once it is back, it is used again
            for _ in range(100):
                store.append_message(chat, "user", "after")
                if store.redis.stats()["available"] and "is back" in caplog.text:
                    break
                time.sleep(0.05)
            written = store.get_messages(chat)
            assert other.get_messages(chat) == written
            assert other.redis.hits == 1


def test_a_missing_redis_package_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(convstore.ConfigurationError, match="redis extra"):
        RedisLink(REDIS, "sqlite:///x", 60)


def test_the_environment_names_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSTORE_REDIS_URL", REDIS)
    with convstore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert store.redis is not None
    monkeypatch.delenv("CONVSTORE_REDIS_URL")
    with convstore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert store.redis is None
