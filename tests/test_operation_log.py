"""The operation log: one INFO line per committed create, update and delete."""

from __future__ import annotations

import logging

import pytest

import convstore
from convstore import ConversationManagerConfig, PersistConversationManager


def operations(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.fields["operation"], r.fields["conversation_id"])  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "convstore.operations"
    ]


def test_each_committed_write_is_logged_without_content(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="convstore.operations")
    with convstore.open("memory://") as store:
        chat = store.create_conversation("c")
        message = store.append_message(chat.id, "user", "a secret")
        store.update_conversation(chat.id, name="renamed")
        store.delete_message(chat.id, message.id)
        store.delete_conversation(chat.id)
    assert operations(caplog) == [
        ("conversation.created", chat.id),
        ("state.changed", chat.id),
        ("messages.appended", chat.id),
        ("conversation.updated", chat.id),
        ("messages.deleted", chat.id),
        ("conversation.deleted", chat.id),
    ]
    assert "a secret" not in caplog.text
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name.endswith("operations"))


def test_a_rolled_back_write_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with convstore.open("memory://") as store:
        chat = store.create_conversation("c")
        caplog.set_level(logging.INFO, logger="convstore.operations")
        caplog.clear()  # the create above, if another test left the level at INFO
        with pytest.raises(RuntimeError), store.transaction(chat.id):
            store.append_message(chat.id, "user", "never kept")
            raise RuntimeError("abandon")
        assert store.get_messages(chat.id) == []
    assert operations(caplog) == []


def test_the_manager_applies_its_log_level(tmp_path: object) -> None:
    config = ConversationManagerConfig(url="memory://", log_level="warning", backup_enabled=False)
    manager = PersistConversationManager(config)
    try:
        assert logging.getLogger("convstore").level == logging.WARNING
    finally:
        manager.close()
        logging.getLogger("convstore").setLevel(logging.NOTSET)
