"""Backups: full, incremental and per conversation, restore, retention and the scheduler."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import convstore
from convstore import (
    ConfigurationError,
    ConversationNotFoundError,
    ConversationStore,
    DataIntegrityError,
    InvalidInputError,
    PersistConversationManager,
)
from convstore import backup as backup_module
from convstore.archive import ArchiveReader, ConversationEntry, DeletedEntry
from convstore.backup import BackupManager, BackupScheduler, backups_for, default_backup_dir
from tests.archive_data import fill, snapshot
from tests.conftest import backend_url


def open_store(backend: str, tmp_path: Path, **settings: Any) -> ConversationStore:
    """A store of ``backend`` with backups in ``tmp_path/backups`` and no scheduler."""
    settings = {"backup_dir": str(tmp_path / "backups"), "backup_enabled": False, **settings}
    return convstore.open(backend_url(backend, tmp_path), **settings)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[ConversationStore]:
    with open_store(backend, tmp_path) as opened:
        yield opened


@pytest.fixture
def backups(store: ConversationStore) -> BackupManager:
    return backups_for(store)


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` becomes true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def archived(backups: BackupManager, backup_id: str) -> list[str]:
    """The archive's entries: conversation ids, and "-id" for deletions."""
    directory = backups.directory / backup_id
    [path] = [p for p in directory.iterdir() if p.name.startswith("archive.jsonl")]
    with ArchiveReader(path) as reader:
        return [
            e.conversation.id if isinstance(e, ConversationEntry) else f"-{e.conversation_id}"
            for e in reader.entries()
            if isinstance(e, ConversationEntry | DeletedEntry)
        ]


# where backups go -----------------------------------------------------------------------


def test_default_backup_dir() -> None:
    assert default_backup_dir("sqlite:///data/chats.db", None) == Path("data/backups")
    assert default_backup_dir("sqlite:////abs/chats.db", None) == Path("/abs/backups")
    assert default_backup_dir("file:///srv/convs", None) == Path("/srv/convs/backups")
    assert default_backup_dir("file://rel", None) == Path("rel/backups")
    assert default_backup_dir("file://ignored", "/store") == Path("/store/backups")
    for url in ("memory://", "sqlite://", "sqlite:///:memory:"):
        assert default_backup_dir(url, None) is None


def test_stores_on_disk_back_up_beside_themselves(tmp_path: Path) -> None:
    with convstore.open(f"sqlite:///{tmp_path / 'db' / 'x.db'}") as store:
        assert backups_for(store).directory == tmp_path / "db" / "backups"
    with (
        convstore.open("memory://") as store,
        pytest.raises(ConfigurationError, match="no backup directory"),
    ):
        backups_for(store)


# full, incremental and chains -------------------------------------------------------------


def test_incremental_holds_only_changes_and_deletions(
    store: ConversationStore, backups: BackupManager
) -> None:
    rich, empty, branched = fill(store)
    full = backups.full_backup()
    assert archived(backups, full) == [rich, empty, branched]
    store.append_message(empty, "user", "now it has one")
    store.delete_conversation(branched)
    new = store.create_conversation("new").id
    incremental = backups.incremental_backup()
    assert archived(backups, incremental) == [empty, new, f"-{branched}"]
    [listed, _] = backups.list_backups()
    assert listed["backup_id"] == incremental and listed["kind"] == "incremental"
    assert listed["since"] == full and listed["conversation_ids"] == sorted([empty, new])
    assert listed["deleted"] == [branched] and listed["size"] > 0
    assert listed["counts"] == {"conversations": 2, "messages": 1, "deleted": 1}
    unchanged = backups.incremental_backup()
    assert archived(backups, unchanged) == []
    assert backups.describe(unchanged)["since"] == incremental


def test_restore_replays_the_chain(store: ConversationStore, backups: BackupManager) -> None:
    rich, empty, branched = fill(store)
    full = backups.full_backup()
    at_full = snapshot(store)
    store.append_message(rich, "assistant", "changed after the full backup")
    store.delete_conversation(branched)
    first = backups.incremental_backup()
    at_first = snapshot(store)
    store.update_conversation(empty, name="renamed")
    second = backups.incremental_backup()
    at_second = snapshot(store)

    store.delete_conversation(rich)
    store.append_message(empty, "user", "lost")
    later = store.create_conversation("made after every backup").id
    summary = backups.restore(first)
    assert (summary.restored, summary.deleted) == (2, 0)
    assert {k: v for k, v in snapshot(store).items() if k != later} == at_first
    backups.restore(second)
    assert {k: v for k, v in snapshot(store).items() if k != later} == at_second
    backups.restore(full)
    assert {k: v for k, v in snapshot(store).items() if k != later} == at_full
    assert backups.restore(second).deleted == 1  # branched again deleted by the chain
    assert store.get_conversation(later) is not None  # unknown to the backups: left alone
    assert store.check_integrity() == []


def test_restore_checks_every_archive_before_writing(
    store: ConversationStore, backups: BackupManager
) -> None:
    rich, *_ = fill(store)
    backups.full_backup()
    store.append_message(rich, "user", "x")
    incremental = backups.incremental_backup()
    store.delete_conversation(rich)
    before = snapshot(store)
    path = backups.directory / incremental / "archive.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"content":"x"', b'"content":"y"'))
    with pytest.raises(DataIntegrityError, match=f"{incremental}.*checksum mismatch"):
        backups.restore(incremental)
    assert snapshot(store) == before


def test_a_chain_missing_its_full_backup_cannot_be_restored(
    store: ConversationStore, backups: BackupManager
) -> None:
    fill(store)
    full = backups.full_backup()
    incremental = backups.incremental_backup()
    (backups.directory / full / "manifest.json").unlink()
    with pytest.raises(DataIntegrityError, match=f"{full} it builds on is missing"):
        backups.restore(incremental)
    assert backups.describe(backups.incremental_backup())["kind"] == "full"  # a new chain


# single conversations (the seed API) -----------------------------------------------------


def test_backup_and_restore_one_conversation(backend: str, tmp_path: Path) -> None:
    with PersistConversationManager(store=open_store(backend, tmp_path)) as manager:
        chat = manager.create_conversation(
            "chat", initial_messages=[{"role": "user", "content": "a"}]
        )
        other = manager.create_conversation("other")
        backup_id = manager.backup_conversation(chat)
        saved = manager.get_conversation(chat)
        manager.append_message(chat, "assistant", "b")
        assert manager.restore_conversation(chat, backup_id) is True
        assert manager.get_conversation(chat) == saved
        assert manager.restore_conversation(other, backup_id) is False
        manager.delete_conversation(chat)
        assert manager.restore_conversation(chat, backup_id) is True
        assert manager.get_conversation(chat) == saved
        [listed] = manager.list_backups(chat)
        assert listed["kind"] == "conversation" and listed["conversation_id"] == chat
        assert manager.list_backups(other) == []
        assert manager.restore_backup(backup_id) == {"restored": 1, "deleted": 0}
        with pytest.raises(ConversationNotFoundError):
            manager.backup_conversation("missing")


def test_restore_one_conversation_from_a_chain(
    store: ConversationStore, backups: BackupManager
) -> None:
    rich, empty, branched = fill(store)
    full = backups.full_backup()
    at_full = snapshot(store)
    store.append_message(empty, "user", "changed")
    store.delete_conversation(branched)
    incremental = backups.incremental_backup()
    store.delete_conversation(rich)
    assert backups.restore_conversation(rich, incremental) is True  # held by the full backup
    assert snapshot(store)[rich] == at_full[rich]
    assert backups.restore_conversation(branched, incremental) is False  # deleted by then
    assert backups.restore_conversation(branched, full) is True
    assert [b["backup_id"] for b in backups.list_backups(rich)] == [full]


def test_backup_ids_are_checked_before_use(
    store: ConversationStore, backups: BackupManager
) -> None:
    for bad in ("../../etc", "20260101T000000.000000Z/..", ""):
        with pytest.raises(InvalidInputError, match="backup id"):
            backups.restore(bad)
    with pytest.raises(InvalidInputError, match="there is no backup"):
        backups.restore("20200101T000000.000000Z")


# retention ----------------------------------------------------------------------------


def test_retention_keeps_the_newest_and_what_they_build_on(tmp_path: Path) -> None:
    with open_store("memory", tmp_path, max_backups=3) as store:
        backups = backups_for(store)
        chat = store.create_conversation("c").id

        def change_and(make: Callable[[], str]) -> str:
            store.append_message(chat, "user", "more")
            return make()

        full = backups.full_backup()
        chain = [full] + [change_and(backups.incremental_backup) for _ in range(3)]
        assert [b["backup_id"] for b in backups.list_backups()] == chain[::-1]  # all needed
        fulls = [change_and(backups.full_backup) for _ in range(2)]
        kept = [b["backup_id"] for b in backups.list_backups()]
        assert kept == [*fulls[::-1], *chain[::-1]]  # the newest incremental needs its chain
        newest = change_and(backups.full_backup)
        assert [b["backup_id"] for b in backups.list_backups()] == [newest, *fulls[::-1]]
        assert sorted(
            p.name for p in backups.directory.iterdir() if not p.name.startswith(".")
        ) == sorted([newest, *fulls])


def test_max_backups_zero_keeps_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_module, "time", SimpleNamespace(time=lambda: 1.0))
    with open_store("memory", tmp_path, max_backups=0) as store:
        backups = backups_for(store)
        made = [backups.full_backup() for _ in range(4)]
        assert [b["backup_id"] for b in backups.list_backups()] == made[::-1]
        assert made == [  # unique and in order, even within one clock tick
            "19700101T000001.000000Z",
            "19700101T000001.000000Z-001",
            "19700101T000001.000000Z-002",
            "19700101T000001.000000Z-003",
        ]


# crash safety ---------------------------------------------------------------------------


def test_unfinished_backups_are_ignored_then_cleaned_up(
    store: ConversationStore, backups: BackupManager
) -> None:
    fill(store)
    backups.directory.mkdir(parents=True)
    half = backups.directory / "20990101T000000.000000Z"  # newer than any real backup
    half.mkdir()
    (half / "archive.jsonl").write_text('{"format": "convstore-archive"')
    temp = backups.directory / ".tmp-crashed"
    temp.mkdir()
    (temp / "archive.jsonl").write_text("")
    assert backups.list_backups() == [] and backups.last_backup_time() is None
    made = backups.full_backup()
    assert [b["backup_id"] for b in backups.list_backups()] == [made]
    assert not half.exists() and not temp.exists()


def test_a_damaged_manifest_is_reported(store: ConversationStore, backups: BackupManager) -> None:
    made = backups.full_backup()
    (backups.directory / made / "manifest.json").write_text("{")
    with pytest.raises(DataIntegrityError, match=r"manifest.*damaged"):
        backups.list_backups()
    with PersistConversationManager(store=store) as manager:
        report = manager.health_check()
    assert report["status"] == "unhealthy" and "damaged" in report["backup_error"]


def test_compressed_backups(tmp_path: Path) -> None:
    with open_store("sqlite", tmp_path, enable_compression=True) as store:
        fill(store)
        backups = backups_for(store)
        made = backups.full_backup()
        assert (backups.directory / made / "archive.jsonl.gz").exists()
        expected = snapshot(store)
        for conversation_id in expected:
            store.delete_conversation(conversation_id)
        backups.restore(made)
        assert snapshot(store) == expected


# scheduled backups ----------------------------------------------------------------------


def test_scheduled_backup_policy(tmp_path: Path) -> None:
    with open_store("memory", tmp_path, max_backups=4) as store:
        backups = backups_for(store)
        chat = store.create_conversation("c").id
        first = backups.scheduled_backup()
        assert first is not None and backups.describe(first)["kind"] == "full"
        assert backups.scheduled_backup() is None  # nothing changed
        store.append_message(chat, "user", "x")
        second = backups.scheduled_backup()
        assert second is not None and backups.describe(second)["kind"] == "incremental"
        store.append_message(chat, "user", "y")
        third = backups.scheduled_backup()  # the chain holds max_backups // 2: start anew
        assert third is not None and backups.describe(third)["kind"] == "full"


def test_manager_runs_scheduled_backups_until_closed(tmp_path: Path) -> None:
    config = convstore.ConversationManagerConfig(
        url=f"sqlite:///{tmp_path / 'db' / 's.db'}", backup_interval=0.05
    )
    manager = PersistConversationManager(config)
    try:
        chat = manager.create_conversation("scheduled")
        assert eventually(lambda: len(manager.list_backups()) >= 1)
        manager.append_message(chat, "user", "hello")
        assert eventually(lambda: any(b["kind"] == "incremental" for b in manager.list_backups()))
        assert isinstance(manager.health_check()["last_backup"], float)
    finally:
        manager.close()
    assert not any(t.name == "convstore-backups" and t.is_alive() for t in threading.enumerate())
    assert (tmp_path / "db" / "backups").is_dir()


def test_scheduler_logs_failures_and_keeps_going(
    store: ConversationStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    scheduler = BackupScheduler(BackupManager(store, blocked), interval=0.01)
    with caplog.at_level(logging.ERROR, logger="convstore.backup"):
        scheduler.start()
        try:
            assert eventually(lambda: len(caplog.records) >= 2)  # it failed, and ran again
            assert scheduler.running
        finally:
            scheduler.stop()
    assert not scheduler.running
    assert "scheduled backup into" in caplog.records[0].getMessage()


def test_scheduler_stops_when_the_manager_is_dropped(tmp_path: Path) -> None:
    def backup_threads() -> int:
        return sum(t.name == "convstore-backups" for t in threading.enumerate())

    before = backup_threads()
    manager = PersistConversationManager(store=open_store("memory", tmp_path, backup_enabled=True))
    assert backup_threads() == before + 1
    store = manager.store
    del manager
    assert eventually(lambda: backup_threads() == before)
    store.close()


def test_scheduler_never_keeps_a_process_alive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = (
        "import convstore\n"
        f"config = convstore.ConversationManagerConfig(url={url!r}, backup_interval=3600)\n"
        "manager = convstore.PersistConversationManager(config)\n"
        "manager.create_conversation('left open')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_without_a_backup_directory_backups_are_a_configuration_error() -> None:
    with PersistConversationManager(store=convstore.open("memory://")) as manager:
        assert manager.health_check()["last_backup"] is None
        with pytest.raises(ConfigurationError, match="no backup directory"):
            manager.full_backup()


def test_manifest_layout(store: ConversationStore, backups: BackupManager) -> None:
    rich, *_ = fill(store)
    made = backups.full_backup()
    manifest = json.loads((backups.directory / made / "manifest.json").read_text())
    assert set(manifest) == {
        "backup_id",
        "kind",
        "created_at",
        "conversations",
        "deleted",
        "since",
        "conversation_id",
        "counts",
    }
    conversation = store.get_conversation(rich)
    assert conversation is not None and manifest["conversations"][rich] == conversation.version
