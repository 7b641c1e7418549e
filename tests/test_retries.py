"""Bounded retries: a write whose connection is killed mid-way is tried again and stored
once; other errors, and the last failure, reach the caller (against PostgreSQL)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import psycopg
import pytest

import convstore
from convstore import ConversationStore, LockTimeoutError, StorageError
from convstore.retry import MAX_PAUSE, pause
from tests.conftest import backend_url


def kill_the_waiting_writer(url: str, chat: str, store: ConversationStore) -> BaseException | None:
    """Hold the conversation's row, let ``store`` append (it waits for the row), kill the
    waiting backend, then let go; what the append raised, if anything."""
    outcome: list[BaseException | None] = []
    with psycopg.connect(url, autocommit=False) as holder:
        holder.execute("SELECT id FROM conversations WHERE id = %s FOR UPDATE", (chat,))

        def append() -> None:
            try:
                store.append_message(chat, "user", "once")
            except BaseException as exc:  # reported to the test below
                outcome.append(exc)
            else:
                outcome.append(None)

        writer = threading.Thread(target=append)
        writer.start()
        with psycopg.connect(url, autocommit=True) as killer:
            for _ in range(500):
                waiting = killer.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                ).fetchall()
                if waiting:
                    break
                time.sleep(0.01)
            assert waiting, "the append never waited for the row"
            killer.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
        time.sleep(0.2)
        holder.rollback()
        writer.join(30)
    return outcome[0]


def test_a_killed_connection_is_retried_and_the_write_stored_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = backend_url("postgres", tmp_path)
    with convstore.open(url, lock_timeout=30) as store:
        chat = store.create_conversation("c").id
        with caplog.at_level(logging.WARNING, logger="convstore"):
            assert kill_the_waiting_writer(url, chat, store) is None
        assert [m.content for m in store.get_messages(chat)] == ["once"]
        assert store.get_conversation(chat).message_count == 1  # type: ignore[union-attr]
        assert "retrying (1 of 3)" in caplog.text


def test_without_retries_the_failure_reaches_the_caller(tmp_path: Path) -> None:
    url = backend_url("postgres", tmp_path)
    with convstore.open(url, lock_timeout=30, retry_attempts=0) as store:
        chat = store.create_conversation("c").id
        failure = kill_the_waiting_writer(url, chat, store)
        assert isinstance(failure, StorageError)
        assert failure.transient
        assert store.get_messages(chat) == []


def test_other_errors_are_not_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = backend_url("postgres", tmp_path)
    with convstore.open(url, lock_timeout=0.2) as store, convstore.open(url) as other:
        chat = store.create_conversation("c").id
        with (
            other.transaction(chat),
            caplog.at_level(logging.WARNING, logger="convstore"),
            pytest.raises(LockTimeoutError),
        ):
            store.append_message(chat, "user", "blocked")
        assert "retrying" not in caplog.text


def test_pauses_grow_and_stay_bounded() -> None:
    assert 0.025 <= pause(1) <= 0.05
    assert 0.05 <= pause(2) <= 0.1
    assert MAX_PAUSE / 2 <= pause(30) <= MAX_PAUSE
