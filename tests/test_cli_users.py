"""convstore users: keys printed once, listed users, revocation."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import convstore
from convstore.accounts import Accounts
from convstore.cli import app

runner = CliRunner(env={"COLUMNS": "400"})


def test_users_are_added_listed_given_keys_and_revoked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    added = runner.invoke(app, ["users", "add", "Alice", "--id", "alice", "--url", url])
    assert added.exit_code == 0, added.output
    key = added.output.split()[-1]
    assert key.startswith("cs_")
    listed = runner.invoke(app, ["users", "list", "--url", url])
    assert "alice" in listed.output and "Alice" in listed.output
    second = runner.invoke(app, ["users", "key", "alice", "--url", url]).output.strip()
    with convstore.open(url) as store:
        accounts = Accounts(store)
        user = accounts.authenticate(key)
        assert user is not None
        assert accounts.authenticate(second) == user
    assert runner.invoke(app, ["users", "revoke", key, "--url", url]).exit_code == 0
    with convstore.open(url) as store:
        assert Accounts(store).authenticate(key) is None
    again = runner.invoke(app, ["users", "revoke", key, "--url", url])
    assert again.exit_code == 2
    assert "no such key" in again.output


def test_bad_user_commands_fail_with_a_code(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    runner.invoke(app, ["users", "add", "A", "--id", "a", "--url", url])
    for args in (
        ["users", "add", "B", "--id", "a"],
        ["users", "key", "nobody"],
        ["users", "add", " "],
    ):
        result = runner.invoke(app, [*args, "--url", url])
        assert result.exit_code == 2
        assert "error" in result.output


def test_serve_refuses_a_bad_rate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = runner.invoke(app, ["serve", "--url", url, "--read-rate", "lots"])
    assert result.exit_code == 2
    assert "30/minute" in result.output
