"""The convstore command, run through Typer's test runner and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import convstore
from convstore.accounts import Accounts
from convstore.archive import verify_archive
from convstore.backup import backups_for
from convstore.cli import app
from tests.archive_data import fill, snapshot

runner = CliRunner()


def test_demo_creates_edits_searches_and_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVSTORE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "代码重构讨论" in result.output
    assert "code_suggestion" in result.output
    assert "found 1 conversation" in result.output
    assert (tmp_path / ".convstore" / "convstore.db").exists()
    with convstore.open(f"sqlite:///{tmp_path / '.convstore' / 'convstore.db'}") as store:
        [chat] = store.list_conversations()
        messages = store.get_messages(chat.id)
        assert [m.role.value for m in messages] == ["user", "assistant"]
        assert isinstance(messages[1].content, dict)
        assert messages[1].metadata == {"edited": True}


def test_list_show_search_health(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with convstore.open(url) as store:
        chat = store.create_conversation("Planning")
        store.append_message(chat.id, "user", "find the needle")
        store.append_message(
            chat.id,
            "assistant",
            {"answer": "here"},
            usage={"prompt_tokens": 1, "completion_tokens": 2},
        )
    listed = runner.invoke(app, ["list", "--url", url])
    assert (
        listed.exit_code == 0
        and "Planning" in listed.output
        and "1 conversation(s)" in listed.output
    )
    shown = runner.invoke(app, ["show", chat.id, "--url", url, "--limit", "1"])
    assert shown.exit_code == 0 and "answer" in shown.output and "needle" not in shown.output
    assert runner.invoke(app, ["show", "missing", "--url", url]).exit_code == 2
    found = runner.invoke(app, ["search", "needle", "--url", url])
    assert found.exit_code == 0 and "1 message(s) found" in found.output
    health = runner.invoke(app, ["health", "--url", url])
    assert health.exit_code == 0
    report = json.loads(health.output)
    assert report["total_messages"] == 2 and report["integrity_problems"] == []


def test_errors_are_one_line_with_code(tmp_path: Path) -> None:
    result = runner.invoke(app, ["list", "--url", "oracle://x"])
    assert result.exit_code == 2
    assert "INVALID_CONFIG" in result.output
    bad_id = runner.invoke(app, ["show", "../etc", "--url", "memory://"])
    assert bad_id.exit_code == 2 and "INVALID_INPUT" in bad_id.output


def test_version_and_real_process(tmp_path: Path) -> None:
    assert convstore.__version__ in runner.invoke(app, ["--version"]).output
    env = {**os.environ, "CONVSTORE_URL": f"sqlite:///{tmp_path / 'p.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "convstore", "demo"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "found 1 conversation" in done.stdout


# moving data and backups --------------------------------------------------------------


def test_export_and_import(tmp_path: Path) -> None:
    source_url, target_url = f"sqlite:///{tmp_path / 's.db'}", f"file://{tmp_path / 'files'}"
    with convstore.open(source_url) as source:
        fill(source)
        _, key = Accounts(source).add_user("alice")
        expected = snapshot(source)
    path = tmp_path / "all.jsonl.gz"
    exported = runner.invoke(app, ["export", str(path), "--url", source_url])
    assert exported.exit_code == 0, exported.output
    assert "exported 3 conversation(s), 5 message(s) and 2 user and key" in exported.output
    imported = runner.invoke(app, ["import", str(path), "--url", target_url])
    assert imported.exit_code == 0 and "imported 3 conversation(s)" in imported.output
    with convstore.open(target_url) as target:
        assert Accounts(target).authenticate(key) == Accounts(target).find_user("alice")
    again = runner.invoke(app, ["import", str(path), "--url", target_url])
    assert again.exit_code == 2 and "[CONCURRENCY_CONFLICT]" in again.output
    replaced = runner.invoke(app, ["import", str(path), "--url", target_url, "--replace"])
    assert replaced.exit_code == 0, replaced.output
    with convstore.open(target_url) as target:
        assert snapshot(target) == expected


def test_export_without_users(tmp_path: Path) -> None:
    url, path = f"sqlite:///{tmp_path / 's.db'}", tmp_path / "all.jsonl"
    with convstore.open(url) as store:
        Accounts(store).add_user("alice")
    exported = runner.invoke(app, ["export", str(path), "--no-users", "--url", url])
    assert exported.exit_code == 0 and "and 0 user and key record(s)" in exported.output
    imported = runner.invoke(app, ["import", str(path), "--url", "memory://"])
    assert imported.exit_code == 0 and "and 0 user and key record(s)" in imported.output
    assert verify_archive(path)[1].records == 0


def test_import_of_a_damaged_archive_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"format": "convstore-archive", "version": 9}\n')
    result = runner.invoke(app, ["import", str(path), "--url", "memory://"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "[DATA_INTEGRITY]" in result.output and f"{path}, line 1:" in result.output


def test_backup_backups_and_restore(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 's.db'}"
    with convstore.open(url) as store:
        rich, *_ = fill(store)
    full = runner.invoke(app, ["backup", "--url", url])
    assert full.exit_code == 0 and "full backup" in full.output, full.output
    with convstore.open(url) as store:
        store.append_message(rich, "user", "after the full backup")
        expected = snapshot(store)
    incremental = runner.invoke(app, ["backup", "--url", url, "--incremental"])
    assert incremental.exit_code == 0, incremental.output
    assert "incremental backup" in incremental.output and "1 conversation(s)" in incremental.output
    listed = runner.invoke(app, ["backups", "--url", url])
    assert listed.exit_code == 0 and "2 backup(s)" in listed.output
    with convstore.open(url) as store:
        [newest, _] = backups_for(store).list_backups()
        store.delete_conversation(rich)
    assert newest["backup_id"] in listed.output
    health = runner.invoke(app, ["health", "--url", url])
    assert json.loads(health.output)["last_backup"] == newest["created_at"]
    restored = runner.invoke(app, ["restore", newest["backup_id"], "--url", url])
    assert restored.exit_code == 0 and "restored 3 conversation(s)" in restored.output
    with convstore.open(url) as store:
        assert snapshot(store) == expected


def test_backup_directory_option_and_errors(tmp_path: Path) -> None:
    no_dir = runner.invoke(app, ["backup", "--url", "memory://"])
    assert no_dir.exit_code == 2 and "[INVALID_CONFIG]" in no_dir.output
    chosen = ["--url", "memory://", "--dir", str(tmp_path / "elsewhere")]
    assert runner.invoke(app, ["backup", *chosen]).exit_code == 0
    listed = runner.invoke(app, ["backups", *chosen])
    assert "1 backup(s)" in listed.output and "full" in listed.output
    bad = runner.invoke(app, ["restore", "../x", *chosen])
    assert bad.exit_code == 2 and "[INVALID_INPUT]" in bad.output


def test_export_as_a_real_process_draws_progress_on_a_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with convstore.open(url) as store:
        fill(store)
    path = tmp_path / "out.jsonl"
    env = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "convstore", "export", str(path), "--url", url],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "exporting" in done.stderr and "3/3" in done.stderr
    header, counts = verify_archive(path)
    assert header.kind == "full" and counts.conversations == 3


def test_embed_then_semantic_and_hybrid_search(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with convstore.open(url) as store:
        chat = store.create_conversation("c").id
        store.append_message(chat, "user", "the deploy pipeline failed on friday")
        store.append_message(chat, "user", "lunch plans for the team")
    embedded = runner.invoke(app, ["embed", "--url", url, "--embedder", "hashing"])
    assert embedded.exit_code == 0, embedded.output
    assert "embedded 2 message(s)" in embedded.output
    again = runner.invoke(app, ["embed", "--url", url])
    assert "embedded 0 message(s)" in again.output
    for mode in ("semantic", "hybrid"):
        found = runner.invoke(
            app,
            ["search", "deploy pipeline", "--url", url, "--mode", mode, "--embedder", "hashing"],
        )
        assert found.exit_code == 0, found.output
        assert "deploy" in found.output
        assert "lunch" not in found.output  # unrelated: below the similarity floor
    unknown = runner.invoke(app, ["embed", "--url", url, "--embedder", "magic"])
    assert unknown.exit_code == 2
    assert "unknown embedder 'magic'" in unknown.output
