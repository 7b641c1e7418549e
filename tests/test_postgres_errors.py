"""PostgreSQL failures surface as convstore's typed errors."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import convstore
from convstore import ConcurrencyError, LockTimeoutError, StorageError
from tests.conftest import backend_url


def test_a_deadlock_between_two_transactions_is_a_concurrency_error(tmp_path: Path) -> None:
    url = backend_url("postgres", tmp_path)
    with convstore.open(url, lock_timeout=30) as store:
        first = store.create_conversation("a").id
        second = store.create_conversation("b").id
        both_inside = threading.Barrier(2)
        outcomes: list[BaseException | None] = []

        def cross(mine: str, theirs: str) -> None:
            try:
                with store.transaction(mine):
                    both_inside.wait(10)
                    store.append_message(theirs, "user", f"from {mine}")
            except BaseException as exc:  # reported to the main thread below
                outcomes.append(exc)
            else:
                outcomes.append(None)

        threads = [
            threading.Thread(target=cross, args=(first, second)),
            threading.Thread(target=cross, args=(second, first)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        failures = [o for o in outcomes if o is not None]
        assert len(outcomes) == 2 and len(failures) == 1
        assert isinstance(failures[0], ConcurrencyError)
        assert "conflicted" in str(failures[0])
        assert store.count_messages() == 1  # the loser's transaction left nothing
        assert store.check_integrity() == []


def test_a_row_held_past_lock_timeout_is_a_lock_timeout(tmp_path: Path) -> None:
    url = backend_url("postgres", tmp_path)
    with convstore.open(url, lock_timeout=0.2) as store, convstore.open(url) as other:
        chat = store.create_conversation("c").id
        with other.transaction(chat):
            with pytest.raises(LockTimeoutError, match="lock_timeout"):
                store.update_conversation(chat, name="blocked")
            assert store.get_conversation(chat) is not None  # reads go on


def test_an_unreachable_server_is_a_transient_storage_error() -> None:
    with pytest.raises(StorageError, match=r"connection .* failed") as raised:
        convstore.open("postgresql://nobody@127.0.0.1:1/none")
    assert raised.value.transient
