"""The file:// backend's own promises: its layout, journals, index, damage and locks."""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

import convstore
from convstore import (
    ConversationManagerConfig,
    ConversationStore,
    DataIntegrityError,
    LockTimeoutError,
    PersistConversationManager,
)
from tests.processes import PROCESSES


def open_files(root: Path, **settings: object) -> ConversationStore:
    return convstore.open(f"file://{root}", **settings)  # type: ignore[arg-type]


def snapshot_of(root: Path, conversation_id: str) -> dict[str, object]:
    data = (root / "conversations" / f"{conversation_id}.json").read_bytes()
    if data.startswith(b"\x1f\x8b"):
        data = gzip.decompress(data)
    document: dict[str, object] = json.loads(data)
    return document


def test_seed_layout_through_storage_path(tmp_path: Path) -> None:
    root = tmp_path / "conversations"
    with PersistConversationManager(ConversationManagerConfig(storage_path=str(root))) as manager:
        chat = manager.create_conversation("代码重构讨论", description="关于架构")
        manager.append_message(chat, "user", "请帮我重构")
        assert manager.get_messages(chat)[0]["content"] == "请帮我重构"
    for part in ("conversations", "index", "backups", "temp"):
        assert (root / part).is_dir()
    assert (root / "conversations" / f"{chat}.json").is_file()
    assert (root / "conversations" / f"{chat}.lock").exists()
    assert (root / "index" / "conversations.idx").is_file()
    assert (root / "index" / "index.lock").exists()
    document = snapshot_of(root, chat)
    assert document["format"] == "convstore.conversation"
    assert document["conversation"]["name"] == "代码重构讨论"  # type: ignore[index]
    assert list((root / "temp").iterdir()) == []


def test_journal_is_compacted_into_a_readable_snapshot(tmp_path: Path) -> None:
    with open_files(tmp_path) as store:
        chat = store.create_conversation("long").id
        for i in range(400):
            store.append_message(chat, "user", f"message {i} " + "x" * 300)
        journal = tmp_path / "conversations" / f"{chat}.journal"
        snapshot = tmp_path / "conversations" / f"{chat}.json"
        assert journal.stat().st_size <= max(snapshot.stat().st_size, 64 * 1024)
        messages = snapshot_of(tmp_path, chat)["messages"]
        assert len(messages) > 100  # type: ignore[arg-type]
    with open_files(tmp_path) as store:
        assert [m.seq for m in store.get_messages(chat)] == list(range(1, 401))
        assert store.check_integrity() == []


def test_torn_journal_tail_is_ignored_then_repaired(tmp_path: Path) -> None:
    with open_files(tmp_path) as store:
        chat = store.create_conversation("torn").id
        store.append_message(chat, "user", "kept")
    journal = tmp_path / "conversations" / f"{chat}.journal"
    good = journal.read_bytes()
    journal.write_bytes(good + b'1234abcd {"n": 2, "ops": [{"op": "upd')  # a write cut short
    with open_files(tmp_path) as store:
        assert [m.content for m in store.get_messages(chat)] == ["kept"]
        store.append_message(chat, "assistant", "after")
        assert [m.content for m in store.get_messages(chat)] == ["kept", "after"]
        assert store.check_integrity() == []
    repaired = journal.read_bytes()
    assert repaired.startswith(good) and repaired.endswith(b"\n")
    assert b'"op": "upd' not in repaired


def test_damage_in_the_middle_of_a_journal_is_reported(tmp_path: Path) -> None:
    with open_files(tmp_path) as store:
        chat = store.create_conversation("bad").id
        store.append_message(chat, "user", "one")
        store.append_message(chat, "user", "two")
    journal = tmp_path / "conversations" / f"{chat}.journal"
    lines = journal.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b"one", b"0ne")  # checksum no longer matches
    damaged = b"\n".join(lines)
    journal.write_bytes(damaged)
    with open_files(tmp_path) as store:
        with pytest.raises(DataIntegrityError, match=rf"{chat}\.journal is damaged"):
            store.get_messages(chat)
        assert any(f"{chat}.journal" in p for p in store.check_integrity())
    assert journal.read_bytes() == damaged  # reading never rewrites damage away


@pytest.mark.parametrize(
    "damage",
    [b"", b'{"format": "convstore.conversation", "vers', b"\x00\xff garbage"],
    ids=["zero-length", "truncated", "garbage"],
)
def test_damaged_snapshot_raises_naming_the_file(tmp_path: Path, damage: bytes) -> None:
    with open_files(tmp_path) as store:
        chat = store.create_conversation("victim").id
        other = store.create_conversation("bystander").id
        store.append_message(other, "user", "fine")
    snapshot = tmp_path / "conversations" / f"{chat}.json"
    snapshot.write_bytes(damage)
    with open_files(tmp_path) as store:  # the rest of the store still opens and works
        with pytest.raises(DataIntegrityError, match=rf"{chat}\.json"):
            store.get_messages(chat)
        with pytest.raises(DataIntegrityError, match=rf"{chat}\.json"):
            store.append_message(chat, "user", "refused")
        assert [m.content for m in store.get_messages(other)] == ["fine"]
        # listing is answered by the index alone, without opening conversation files
        assert {c.id for c in store.list_conversations()} == {chat, other}
        assert any(f"{chat}.json" in p for p in store.check_integrity())
    assert snapshot.read_bytes() == damage


def test_missing_index_is_rebuilt_from_the_files(tmp_path: Path) -> None:
    with open_files(tmp_path) as store:
        ids = [store.create_conversation(f"c{i}").id for i in range(5)]
        store.append_message(ids[0], "user", "hello")
        expected = store.list_conversations()
    shutil.rmtree(tmp_path / "index")
    with open_files(tmp_path) as store:
        assert store.list_conversations() == expected
        assert store.count_messages() == 1
        assert store.check_integrity() == []


def test_index_that_disagrees_with_the_files_is_repaired(tmp_path: Path) -> None:
    with open_files(tmp_path) as store:
        chat = store.create_conversation("c").id
        store.append_message(chat, "user", "one")
    index_copy = tmp_path / "index-before"
    shutil.copytree(tmp_path / "index", index_copy)
    with open_files(tmp_path) as store:
        store.append_message(chat, "user", "two")  # the index moves on ...
    shutil.rmtree(tmp_path / "index")
    shutil.copytree(index_copy, tmp_path / "index")  # ... and is put back: a lost index write
    with open_files(tmp_path) as store:
        listed = store.list_conversations()[0]
        assert listed.message_count == 2
        assert listed == store.get_conversation(chat)
        assert store.check_integrity() == []


def test_compressed_snapshots_read_either_way(tmp_path: Path) -> None:
    with open_files(tmp_path, enable_compression=True) as store:
        chat = store.create_conversation("zip", metadata={"k": "v"}).id
        store.append_messages(chat, [{"role": "user", "content": "z" * 500}] * 300)
        expected = store.get_messages(chat)
    assert (tmp_path / "conversations" / f"{chat}.json").read_bytes()[:2] == b"\x1f\x8b"
    with open_files(tmp_path) as store:
        assert store.get_messages(chat) == expected
        store.update_conversation(chat, name="plain again")
    with open_files(tmp_path, enable_compression=True) as store:
        assert store.get_conversation(chat).name == "plain again"  # type: ignore[union-attr]


def test_writers_on_different_conversations_do_not_wait_for_each_other(tmp_path: Path) -> None:
    with open_files(tmp_path, lock_timeout=0.3) as store:
        busy = store.create_conversation("busy").id
        free = store.create_conversation("free").id
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store.transaction(busy):
                store.append_message(busy, "user", "held")
                inside.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert inside.wait(10)
        store.append_message(free, "user", "not blocked")  # another conversation
        assert store.list_conversations()[0].id == free  # the index is not held
        with pytest.raises(LockTimeoutError, match=rf"{busy}\.lock"):
            store.append_message(busy, "user", "blocked")
        release.set()
        holder.join()
        assert [m.content for m in store.get_messages(busy)] == ["held"]


def churn(url: str, conversation_ids: list[str], worker: int, rounds: int) -> None:
    """Write to several conversations in varying order, list and reopen, all at once."""
    with convstore.open(url, lock_timeout=30) as store:
        for i in range(rounds):
            ordered = conversation_ids[worker % 2 :] + conversation_ids[: worker % 2]
            for conversation_id in ordered:
                with store.transaction(conversation_id):
                    store.append_message(conversation_id, "user", f"{worker}:{i}")
                store.list_conversations()
            if i % 10 == 0:
                convstore.open(url).close()  # reopening checks the index against the files


def test_conversation_and_index_locks_never_deadlock(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    with convstore.open(url) as store:
        chats = [store.create_conversation(f"c{i}").id for i in range(2)]
    processes = [PROCESSES.Process(target=churn, args=(url, chats, w, 30)) for w in range(4)]
    started = time.monotonic()
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * 4
    assert time.monotonic() - started < 120
    with convstore.open(url) as store:
        assert store.count_messages() == 4 * 30 * 2
        for chat in chats:
            assert [m.seq for m in store.get_messages(chat)] == list(range(1, 121))
        assert store.check_integrity() == []


def test_a_write_never_changes_a_state_that_readers_hold(tmp_path: Path) -> None:
    """Readers in other threads keep reading the state they were given after its lock is
    released: a writer changes a copy and installs it at commit (else a reader could see
    half a write, or a dict change size while it iterates)."""
    with convstore.open(f"file://{tmp_path / 'files'}") as store:
        chat = store.create_conversation("c").id
        store.append_message(chat, "user", "one")
        backend = store._backend
        held = backend.state(chat)  # type: ignore[attr-defined]
        before = (dict(held.messages), held.conversation)
        store.append_message(chat, "user", "two")
        store.set_state(chat, "archived")
        assert (held.messages, held.conversation) == before
        assert [m.content for m in store.get_messages(chat)] == ["one", "two"]
        assert backend.state(chat) is not held  # type: ignore[attr-defined]
