"""Many writers at once: processes and threads sharing one store lose and duplicate nothing."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import convstore
from convstore import ConversationStore, LockTimeoutError
from convstore.backends.sql.migrate import head_revision
from tests.conftest import ENGINES, SHARED_BACKENDS, backend_url
from tests.processes import PROCESSES

pytestmark = pytest.mark.slow


def run_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> None:
    """Run one child process per argument tuple; fail if any of them failed."""
    processes = [PROCESSES.Process(target=target, args=a) for a in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


# 4 processes x 250 appends -------------------------------------------------------------


def append_many(url: str, conversation_id: str, worker: int, count: int) -> None:
    with convstore.open(url) as store:
        for i in range(count):
            store.append_message(conversation_id, "user", f"{worker}:{i}")


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_four_processes_append_into_one_conversation(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("shared").id
    run_processes(append_many, [(url, chat, worker, 250) for worker in range(4)])
    with convstore.open(url) as store:
        messages = store.get_messages(chat)
        assert [m.seq for m in messages] == list(range(1, 1001))
        assert sorted(str(m.content) for m in messages) == sorted(
            f"{w}:{i}" for w in range(4) for i in range(250)
        )
        for worker in range(4):  # each process's messages keep their order
            mine = [m.content for m in messages if str(m.content).startswith(f"{worker}:")]
            assert mine == [f"{worker}:{i}" for i in range(250)]
        conversation = store.get_conversation(chat)
        assert conversation is not None
        assert (conversation.message_count, conversation.last_seq) == (1000, 1000)
        assert conversation.head_message_id == messages[-1].id
        assert store.check_integrity() == []


# 8 threads mixing reads and writes -----------------------------------------------------


@pytest.mark.parametrize("backend", ENGINES)
def test_eight_threads_mix_reads_and_writes(backend: str, tmp_path: Path) -> None:
    with convstore.open(backend_url(backend, tmp_path)) as store:
        shared = store.create_conversation("shared").id
        failures: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                own = store.create_conversation(f"worker {worker}").id
                last_seen = 0
                for i in range(40):
                    store.append_message(shared, "user", f"{worker}:{i}")
                    store.append_message(own, "assistant", f"own {i}")
                    seqs = [m.seq for m in store.get_messages(shared)]
                    assert seqs == sorted(set(seqs)), "seq must be unique and increasing"
                    assert len(seqs) >= last_seen, "a reader must never go back in time"
                    last_seen = len(seqs)
                    assert len(store.get_messages(own)) == i + 1
                    store.list_conversations(limit=5)
                    store.search_messages(f"{worker}:{i}", conversation_id=shared)
            except BaseException as exc:  # reported to the main thread below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert [m.seq for m in store.get_messages(shared)] == list(range(1, 321))
        assert store.count_messages() == 320 + 8 * 40
        assert store.check_integrity() == []


# a writer held up past lock_timeout ----------------------------------------------------


def test_writer_blocked_by_a_thread_times_out(tmp_path: Path) -> None:
    # the in-process write lock of the SQL backends; the files backend's locks are
    # per file and shared with other processes, tested below
    with convstore.open(backend_url("sqlite", tmp_path), lock_timeout=0.3) as store:
        chat = store.create_conversation("locked").id
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store.transaction(chat):
                store.append_message(chat, "user", "held")
                inside.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert inside.wait(10)
        started = time.monotonic()
        with pytest.raises(LockTimeoutError, match=r"within 0\.3s"):
            store.append_message(chat, "user", "blocked")
        assert 0.25 <= time.monotonic() - started < 5
        assert store.get_messages(chat) == []  # readers are not blocked, see committed data
        release.set()
        holder.join()
        assert [m.content for m in store.get_messages(chat)] == ["held"]


def hold_transaction(url: str, conversation_id: str, inside: Event, release: Event) -> None:
    with convstore.open(url) as store, store.transaction(conversation_id):
        store.append_message(conversation_id, "user", "from the other process")
        inside.set()
        release.wait(30)


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_writer_blocked_by_another_process_times_out(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url, lock_timeout=0.5) as store:
        chat = store.create_conversation("locked").id
        inside, release = PROCESSES.Event(), PROCESSES.Event()
        holder = PROCESSES.Process(target=hold_transaction, args=(url, chat, inside, release))
        holder.start()
        try:
            assert inside.wait(60)
            started = time.monotonic()
            with pytest.raises(LockTimeoutError, match="lock"):
                store.append_message(chat, "user", "blocked")
            assert 0.4 <= time.monotonic() - started < 5
            if backend == "files":  # readers of the files backend wait for the writer's lock
                with pytest.raises(LockTimeoutError, match="shared lock"):
                    store.get_messages(chat)
            else:  # readers of SQLite (WAL) and PostgreSQL (MVCC) are never blocked
                assert store.get_messages(chat) == []
            assert store.count_messages() == 0  # and nothing was half-written
        finally:
            release.set()
            holder.join(60)
        assert holder.exitcode == 0
        store.append_message(chat, "user", "after")
        assert [m.content for m in store.get_messages(chat)] == [
            "from the other process",
            "after",
        ]


def fail_in_transaction(url: str, conversation_id: str) -> None:
    with convstore.open(url) as store:
        try:
            with store.transaction(conversation_id):
                store.append_message(conversation_id, "user", "lost 1")
                store.append_message(conversation_id, "assistant", "lost 2")
                raise RuntimeError("crash in the middle")
        except RuntimeError:
            pass


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_transaction_failing_in_another_process_leaves_nothing(
    backend: str, tmp_path: Path
) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("t").id
        store.get_messages(chat)  # warm the cache: it must not hide a change either way
    run_processes(fail_in_transaction, [(url, chat)])
    with convstore.open(url) as store:
        assert store.get_messages(chat) == []
        assert store.check_integrity() == []


# 8 processes opening one fresh store ---------------------------------------------------


class _Flag(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.upgraded = False

    def emit(self, record: logging.LogRecord) -> None:
        self.upgraded = self.upgraded or "upgraded the schema" in record.getMessage()


def open_fresh(url: str, start: Barrier, upgrades: Any, index: int) -> None:
    flag = _Flag()
    logger = logging.getLogger("convstore.backends.sql.migrate")
    logger.addHandler(flag)
    logger.setLevel(logging.INFO)
    start.wait(60)
    with convstore.open(url) as store:
        store.create_conversation(f"opened by {index}")
    upgrades[index] = int(flag.upgraded)


def test_eight_processes_open_one_fresh_store(tmp_path: Path) -> None:
    url = backend_url("sqlite", tmp_path)
    start = PROCESSES.Barrier(8)
    upgrades = PROCESSES.Array("i", 8)
    run_processes(open_fresh, [(url, start, upgrades, i) for i in range(8)])
    assert upgrades[:].count(1) == 1, "exactly one opener runs the migration"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    engine.dispose()
    assert versions == [(head_revision(),)]
    with convstore.open(url) as store:
        assert store.count_conversations() == 8
        assert store.check_integrity() == []


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_store_is_shared_safely_by_threads_opening_it(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    opened: list[ConversationStore] = []
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def open_one() -> None:
        try:
            start.wait(10)
            opened.append(convstore.open(url))
        except BaseException as exc:  # reported to the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for store in opened:
        store.create_conversation("x")
        store.close()
    with convstore.open(url) as store:
        assert store.count_conversations() == 8


# 8 writers on 4 conversations, 2 readers listing and searching -------------------------


def list_and_search(url: str, stop: Event, checks: Any) -> None:
    with convstore.open(url, lock_timeout=60) as store:
        while not stop.is_set():
            listed = store.list_conversations()
            assert len(listed) == 4
            for conversation in listed:  # counters never run ahead of the messages
                assert len(store.get_messages(conversation.id)) >= conversation.message_count
            store.search_messages("w3:")
            with checks.get_lock():
                checks.value += 1


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_eight_writers_and_two_readers(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chats = [store.create_conversation(f"c{i}").id for i in range(4)]
    stop, checks = PROCESSES.Event(), PROCESSES.Value("i", 0)
    readers = [
        PROCESSES.Process(target=list_and_search, args=(url, stop, checks)) for _ in range(2)
    ]
    for reader in readers:
        reader.start()
    try:
        run_processes(append_many, [(url, chats[w % 4], w, 60) for w in range(8)])
    finally:
        stop.set()
        for reader in readers:
            reader.join(60)
    assert [r.exitcode for r in readers] == [0, 0]
    assert checks.value > 0
    with convstore.open(url) as store:
        for i, chat in enumerate(chats):
            messages = store.get_messages(chat)
            assert [m.seq for m in messages] == list(range(1, 121))
            assert sorted(str(m.content) for m in messages) == sorted(
                f"{w}:{n}" for w in (i, i + 4) for n in range(60)
            )
        listed = {c.id: c.message_count for c in store.list_conversations()}
        assert listed == dict.fromkeys(chats, 120)  # the index agrees with the files
        assert store.check_integrity() == []


def test_opening_waits_for_a_writer_setting_up_a_fresh_file(tmp_path: Path) -> None:
    """Switching a file to WAL needs it alone; SQLite refuses that at once rather than
    wait, so the store waits (up to lock_timeout) while another connection writes."""
    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with convstore.open(f"sqlite:///{path}", lock_timeout=5) as store:
            assert store.create_conversation("opened").name == "opened"
    finally:
        release.join()
        other.close()
