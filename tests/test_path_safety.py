"""No id can make the files backend read or write outside its directory."""

from __future__ import annotations

from pathlib import Path

import pytest

import convstore
from convstore import (
    ConversationManagerConfig,
    DataIntegrityError,
    InvalidInputError,
    PersistConversationManager,
)

HOSTILE_IDS = ["../escape", "..", "/etc/passwd", "a/b", "a\\b", "x\x00y", "~root", ".", " ", ""]


def files_outside(root: Path, top: Path) -> set[Path]:
    return {p for p in top.rglob("*") if root not in p.parents and p != root}


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_ids_are_refused_before_any_io(tmp_path: Path, hostile: str) -> None:
    root = tmp_path / "store"
    with convstore.open(f"file://{root}") as store:
        chat = store.create_conversation("c").id
        before = files_outside(root, tmp_path)
        attempts = [
            lambda s: s.create_conversation("x", conversation_id=hostile),
            lambda s: s.get_conversation(hostile),
            lambda s: s.get_messages(hostile),
            lambda s: s.append_message(hostile, "user", "x"),
            lambda s: s.append_message(chat, "user", "x", message_id=hostile),
            lambda s: s.get_message(chat, hostile),
            lambda s: s.delete_conversation(hostile),
            lambda s: s.transaction(hostile).__enter__(),
            lambda s: s.create_conversation("x", owner_id=hostile),
        ]
        for attempt in attempts:
            with pytest.raises(InvalidInputError):
                attempt(store)
        assert files_outside(root, tmp_path) == before
        assert store.get_messages(chat) == []
        assert store.count_conversations() == 1


def test_stray_files_in_the_store_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with convstore.open(f"file://{root}") as first:
        chat = first.create_conversation("c").id
    (root / "conversations" / "not an id!.json").write_text("{}")
    (root / "conversations" / "..json").write_text("{}")
    with convstore.open(f"file://{root}") as store:
        assert [c.id for c in store.list_conversations()] == [chat]
        assert any("not a conversation file name" in p for p in store.check_integrity())


def test_links_out_of_the_store_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"format": "convstore.conversation"}')
    root = tmp_path / "store"
    with convstore.open(f"file://{root}") as store:
        chat = store.create_conversation("c").id
    target = root / "conversations" / f"{chat}.json"
    target.unlink()
    target.symlink_to(secret)
    with convstore.open(f"file://{root}") as store:
        with pytest.raises(DataIntegrityError, match="symbolic link"):
            store.get_messages(chat)
        with pytest.raises(DataIntegrityError, match="symbolic link"):
            store.append_message(chat, "user", "x")
    assert secret.read_text() == '{"format": "convstore.conversation"}'


def test_backups_behind_links_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with PersistConversationManager(
        ConversationManagerConfig(storage_path=str(root), backup_enabled=False)
    ) as manager:
        chat = manager.create_conversation("c")
        backup_id = manager.backup_conversation(chat)
        elsewhere = tmp_path / "elsewhere"
        (root / "backups" / backup_id).rename(elsewhere)
        (root / "backups" / backup_id).symlink_to(elsewhere, target_is_directory=True)
        with pytest.raises(DataIntegrityError, match="symbolic link"):
            manager.restore_conversation(chat, backup_id)
