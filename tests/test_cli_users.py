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


def test_a_user_is_named_by_name_or_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    added = runner.invoke(app, ["users", "add", "alice", "--url", url])
    assert added.exit_code == 0, added.output
    with convstore.open(url) as store:
        [alice] = Accounts(store).list_users()
    for name_or_id in ("alice", alice.id):
        issued = runner.invoke(app, ["users", "key", name_or_id, "--url", url])
        assert issued.exit_code == 0, issued.output
        with convstore.open(url) as store:
            assert Accounts(store).authenticate(issued.stdout.strip()) == alice


def test_a_name_two_users_share_must_be_given_as_an_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    for user_id in ("bob1", "bob2"):
        runner.invoke(app, ["users", "add", "bob", "--id", user_id, "--url", url])
    runner.invoke(app, ["users", "add", "Carol", "--id", "bob", "--url", url])
    shared = runner.invoke(app, ["users", "key", "bob", "--url", url])
    assert shared.exit_code == 0  # an id comes before a name: this is Carol's
    carol_key = shared.stdout.strip()
    with convstore.open(url) as store:
        carol = Accounts(store).authenticate(carol_key)
        assert carol is not None and carol.name == "Carol"
        Accounts(store).revoke_key(carol_key)
        store.delete_record("users", "bob")
    ambiguous = runner.invoke(app, ["users", "key", "bob", "--url", url])
    assert ambiguous.exit_code == 2
    assert "[INVALID_INPUT]: 2 users are named 'bob' (ids bob1, bob2)" in ambiguous.stderr
    assert runner.invoke(app, ["users", "key", "bob2", "--url", url]).exit_code == 0
