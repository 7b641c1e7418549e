"""convstore users: keys printed once, listed users, revocation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import convstore
from convstore.accounts import Accounts
from convstore.cli import app
from convstore.server import Rate
from convstore.server.settings import DEMO_RATE

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


def test_users_add_admin_makes_a_server_admin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    added = runner.invoke(app, ["users", "add", "Root", "--id", "root", "--admin", "--url", url])
    assert added.exit_code == 0, added.output
    assert "user root (Root, server admin)" in added.output
    plain = runner.invoke(app, ["users", "add", "Pat", "--id", "pat", "--url", url])
    assert "user pat (Pat)" in plain.output
    with convstore.open(url) as store:
        accounts = Accounts(store)
        assert accounts.authenticate(added.output.split()[-1]).is_admin  # type: ignore[union-attr]
        assert not accounts.get_user("pat").is_admin  # type: ignore[union-attr]


def serve(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Any, str]:
    """Run `convstore serve ARGS` up to the point where it would listen: the app it
    built (or None if it stopped before) and what it printed."""
    import uvicorn

    from convstore.server import observability

    built: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda served, **_: built.append(served))
    monkeypatch.setattr(observability, "configure_logging", lambda **_: None)  # keep pytest's
    result = runner.invoke(app, ["serve", *args])
    return (built[0] if built else None), result.output


def test_serve_demo_user_is_an_admin_with_generous_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    built, output = serve(monkeypatch, "--url", url, "--demo-user")
    assert "created user demo" in output
    settings = built.state.context.settings
    assert (settings.read_rate, settings.write_rate) == (DEMO_RATE, DEMO_RATE)
    assert not settings.public_metrics
    with convstore.open(url) as store:
        assert Accounts(store).get_user("demo").is_admin  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "write_rate"),
    [([], Rate(10, 60.0)), (["--rate-limit", "0"], None), (["--rate-limit", "120"], Rate(120, 60))],
)
def test_serve_rate_limit_is_writes_per_minute_per_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], write_rate: Rate | None
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    built, _ = serve(monkeypatch, "--url", url, "--public-metrics", *args)
    settings = built.state.context.settings
    assert settings.write_rate == write_rate
    assert settings.read_rate == Rate(30, 60.0)
    assert settings.public_metrics


def test_serve_refuses_two_write_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    built, output = serve(
        monkeypatch, "--url", url, "--rate-limit", "5", "--write-rate", "3/minute"
    )
    assert built is None
    assert "not both" in output
