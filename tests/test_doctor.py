"""convstore doctor: finds damage and disagreements, and repairs what can be repaired."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import convstore
from convstore import ConversationManagerConfig, DataIntegrityError, PersistConversationManager
from convstore.cli import app
from tests.conftest import SHARED_BACKENDS, backend_url

runner = CliRunner(env={"COLUMNS": "400"})  # long temporary paths must not wrap


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_healthy_store_passes(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("ok").id
        store.append_message(chat, "user", "hi")
    result = runner.invoke(app, ["doctor", "--url", url])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output


def test_files_store_repaired(tmp_path: Path) -> None:
    url = backend_url("files", tmp_path)
    with convstore.open(url) as store:
        good = store.create_conversation("good").id
        store.append_message(good, "user", "kept")
        bad = store.create_conversation("bad").id
    root = tmp_path / "files"
    journal = root / "conversations" / f"{good}.journal"
    journal.write_bytes(journal.read_bytes() + b"0000 {torn")
    (root / "conversations" / f"{bad}.json").write_bytes(b"{not json")

    found = runner.invoke(app, ["doctor", "--url", url])
    assert found.exit_code == 1
    assert f"{bad}.json" in found.output

    fixed = runner.invoke(app, ["doctor", "--url", url, "--repair"])
    assert fixed.exit_code == 0, fixed.output
    assert "set aside" in fixed.output and "torn" in fixed.output
    assert journal.read_bytes().endswith(b"\n")
    set_aside = list((root / "temp" / "damaged").rglob(f"{bad}.json"))
    assert [p.read_bytes() for p in set_aside] == [b"{not json"]  # kept, not deleted
    with convstore.open(url) as store:
        assert [c.id for c in store.list_conversations()] == [good]
        assert [m.content for m in store.get_messages(good)] == ["kept"]


def test_sqlite_counters_recounted(tmp_path: Path) -> None:
    url = backend_url("sqlite", tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("c").id
        store.append_messages(chat, [{"role": "user", "content": "x"}] * 3)
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("UPDATE conversations SET message_count = 7")
    found = runner.invoke(app, ["doctor", "--url", url])
    assert found.exit_code == 1
    assert "message_count 7 but 3 messages" in found.output
    fixed = runner.invoke(app, ["doctor", "--url", url, "--repair"])
    assert fixed.exit_code == 0, fixed.output
    with convstore.open(url) as store:
        assert store.get_conversation(chat).message_count == 3  # type: ignore[union-attr]


def test_unopenable_sqlite_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"not a database at all" * 50)
    result = runner.invoke(app, ["doctor", "--url", f"sqlite:///{path}"])
    assert result.exit_code == 1
    assert "broken.db" in result.output and "backup" in result.output


def damaged_files_store(root: Path) -> tuple[str, str]:
    """A files store with a backup of one conversation whose file is then destroyed."""
    with PersistConversationManager(
        ConversationManagerConfig(storage_path=str(root), backup_enabled=False)
    ) as manager:
        chat = manager.create_conversation("precious")
        manager.append_message(chat, "user", "backed up")
        backup_id = manager.backup_conversation(chat)
        manager.append_message(chat, "user", "after the backup")
    (root / "conversations" / f"{chat}.json").write_bytes(b"\x00garbage")
    return chat, backup_id


def test_doctor_brings_damaged_conversations_back_from_backups(tmp_path: Path) -> None:
    root = tmp_path / "files"
    chat, backup_id = damaged_files_store(root)
    result = runner.invoke(app, ["doctor", "--url", f"file://{root}", "--repair"])
    assert result.exit_code == 0, result.output
    assert f"{chat} from backup {backup_id}" in result.output
    with convstore.open(f"file://{root}") as store:
        assert [m.content for m in store.get_messages(chat)] == ["backed up"]


def test_auto_recover_is_off_unless_asked_for(tmp_path: Path) -> None:
    root = tmp_path / "files"
    chat, _ = damaged_files_store(root)
    plain = ConversationManagerConfig(storage_path=str(root), backup_enabled=False)
    with (
        PersistConversationManager(plain) as manager,
        pytest.raises(DataIntegrityError, match=rf"{chat}\.json"),
    ):
        manager.get_messages(chat)
    recovering = ConversationManagerConfig(
        storage_path=str(root), backup_enabled=False, auto_recover=True
    )
    with PersistConversationManager(recovering) as manager:
        assert [m["content"] for m in manager.get_messages(chat)] == ["backed up"]
        manager.append_message(chat, "user", "writes go on")
        assert len(manager.get_messages(chat)) == 2
