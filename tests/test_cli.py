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
from convstore.cli import app

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
    assert runner.invoke(app, ["show", "missing", "--url", url]).exit_code == 1
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
