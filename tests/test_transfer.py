"""convstore migrate: a whole store moved between backends, lossless, resumable, verified."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from typer.testing import CliRunner

import convstore
from convstore import ConversationStore, DataIntegrityError
from convstore.accounts import Accounts
from convstore.cli import app
from convstore.transfer import checksum, copy_store, verify
from tests.archive_data import fill
from tests.conftest import backend_url

runner = CliRunner()


def everything(store: ConversationStore) -> dict[str, str]:
    """Every conversation's checksum, by id."""
    found = {}
    for conversation in store.list_conversations():
        record = store.export_conversation(conversation.id)
        assert record is not None
        found[conversation.id] = checksum(*record)
    return found


def test_sqlite_to_postgres_to_files_to_sqlite(tmp_path: Path) -> None:
    urls = [
        backend_url("sqlite", tmp_path / "a"),
        backend_url("postgres", tmp_path),
        backend_url("files", tmp_path / "c"),
        backend_url("sqlite", tmp_path / "d"),
    ]
    with convstore.open(urls[0]) as first:
        fill(first)
        _, key = Accounts(first).add_user("Alice", user_id="alice")
        first.put_record("idempotency", "k", {"status": 201}, ttl=3600)
        first.delete_conversation(first.create_conversation("binned").id, soft=True)
        expected = everything(first)
        records = first.export_records()
        assert expected
        assert len(records) == 4  # the user, the key, the idempotency key, the trash
    for source, target in itertools.pairwise(urls):
        result = runner.invoke(app, ["migrate", source, target])
        assert result.exit_code == 0, result.output
        assert "verified" in result.output
    with convstore.open(urls[-1]) as last:
        assert everything(last) == expected
        assert last.export_records() == records
        assert Accounts(last).authenticate(key) is not None
        assert last.check_integrity() == []


class CopyInterruptedError(Exception):
    pass


def test_an_interrupted_copy_resumes(tmp_path: Path) -> None:
    with (
        convstore.open(backend_url("sqlite", tmp_path / "src")) as source,
        convstore.open(backend_url("files", tmp_path / "dst")) as target,
    ):
        chats = [source.create_conversation(f"c{i}").id for i in range(6)]
        for chat in chats:
            source.append_messages(chat, [{"role": "user", "content": chat}] * 3)

        def stop_after_two(done: int, total: int | None) -> None:
            if done == 2:
                raise CopyInterruptedError

        with pytest.raises(CopyInterruptedError):
            copy_store(source, target, on_progress=stop_after_two)
        assert target.count_conversations() == 2
        report = copy_store(source, target)
        assert (report.copied, report.skipped, report.messages) == (4, 2, 12)
        assert everything(target) == everything(source)


def test_a_copy_that_disagrees_is_reported(tmp_path: Path) -> None:
    with (
        convstore.open(backend_url("sqlite", tmp_path / "src")) as source,
        convstore.open(backend_url("sqlite", tmp_path / "dst")) as target,
    ):
        chat = source.create_conversation("c").id
        source.append_message(chat, "user", "hello")
        copy_store(source, target)
        target.append_message(chat, "user", "only in the copy")
        with pytest.raises(DataIntegrityError, match=chat):
            verify(source, target)
