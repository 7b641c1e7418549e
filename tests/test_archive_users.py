"""Users and API keys travel in the portable archive: exported, checked and imported."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import convstore
from convstore import ConcurrencyError, ConversationStore, DataIntegrityError
from convstore.accounts import KEYS, USERS, Accounts
from convstore.archive import StoredRecord, export_store, import_archive, verify_archive
from tests.archive_data import fill, snapshot
from tests.conftest import ENGINES, backend_url


@pytest.fixture
def source(tmp_path: Path) -> Iterator[ConversationStore]:
    with convstore.open(backend_url("sqlite", tmp_path / "source")) as store:
        fill(store)
        yield store


def _accounts(store: ConversationStore) -> list[StoredRecord]:
    """The store's user and key records, in a stable order."""
    found = [r for r in store.export_records() if r.namespace in (USERS, KEYS)]
    return sorted(found, key=lambda r: (r.namespace, r.key))


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.mark.parametrize("target_backend", ENGINES)
def test_users_and_keys_round_trip(
    target_backend: str, source: ConversationStore, tmp_path: Path
) -> None:
    accounts = Accounts(source)
    _, alice_key = accounts.add_user("Alice", user_id="alice")
    _, bob_key = accounts.add_user("Bob")
    accounts.revoke_key(bob_key)
    second = accounts.issue_key("alice")
    source.put_record("idempotency", "k", {"status": 201}, ttl=3600)
    path = tmp_path / "all.jsonl"
    counts = export_store(source, path)
    assert (counts.conversations, counts.records) == (3, 4)  # 2 users, 2 live keys
    with convstore.open(backend_url(target_backend, tmp_path / "target")) as target:
        imported = import_archive(target, path)
        assert imported.records == 4
        assert _accounts(target) == _accounts(source)
        assert snapshot(target) == snapshot(source)
        restored = Accounts(target)
        assert restored.authenticate(alice_key) == restored.find_user("Alice")
        assert restored.authenticate(second) == restored.find_user("alice")
        assert restored.authenticate(bob_key) is None
        assert target.get_record("idempotency", "k") is None  # only users and keys travel


def test_layout_puts_records_first_and_counts_them(
    source: ConversationStore, tmp_path: Path
) -> None:
    Accounts(source).add_user("Alice", user_id="alice")
    path = tmp_path / "all.jsonl"
    export_store(source, path)
    _, *body, trailer = _lines(path)
    assert [line["type"] for line in body[:3]] == ["record", "record", "conversation"]
    user, key = body[0]["record"], body[1]["record"]
    assert user == {
        "namespace": "users",
        "key": "alice",
        "value": {
            "name": "Alice",
            "created_at": user["value"]["created_at"],  # type: ignore[index]
            "is_admin": False,
        },
        "expires_at": None,
    }
    assert key["namespace"] == "api-keys" and key["value"]["user_id"] == "alice"  # type: ignore[index]
    assert (trailer["conversations"], trailer["messages"], trailer["records"]) == (3, 5, 2)
    assert "secret" not in path.read_text("utf-8")


def test_users_can_be_left_out(source: ConversationStore, tmp_path: Path) -> None:
    Accounts(source).add_user("Alice", user_id="alice")
    path = tmp_path / "all.jsonl"
    assert export_store(source, path, users=False).records == 0
    assert "record" not in [line.get("type") for line in _lines(path)]
    with convstore.open("memory://") as target:
        import_archive(target, path)
        assert Accounts(target).list_users() == []


def test_an_archive_from_before_records_still_reads(
    source: ConversationStore, tmp_path: Path
) -> None:
    path = tmp_path / "old.jsonl"
    export_store(source, path, users=False)
    lines = path.read_bytes().splitlines(keepends=True)
    trailer = json.loads(lines[-1])
    del trailer["records"]  # the trailer is not part of the checksum
    path.write_bytes(b"".join([*lines[:-1], json.dumps(trailer).encode() + b"\n"]))
    assert verify_archive(path)[1].conversations == 3


def test_import_without_replace_refuses_a_different_user(
    source: ConversationStore, tmp_path: Path
) -> None:
    Accounts(source).add_user("Alice", user_id="alice")
    path = tmp_path / "all.jsonl"
    export_store(source, path)
    with convstore.open("memory://") as target:
        Accounts(target).add_user("Someone else", user_id="alice")
        before = (_accounts(target), snapshot(target))
        with pytest.raises(ConcurrencyError, match="user 'alice' already exists"):
            import_archive(target, path)
        assert (_accounts(target), snapshot(target)) == before
        import_archive(target, path, replace=True)
        held = _accounts(target)
        assert all(record in held for record in _accounts(source))  # the target's key stays
        assert Accounts(target).find_user("alice").name == "Alice"
    with convstore.open("memory://") as target:  # the same records again are no conflict
        import_archive(target, path)
        for conversation_id in snapshot(target):
            target.delete_conversation(conversation_id)
        assert import_archive(target, path).records == 2
        assert _accounts(target) == _accounts(source)


def _with_record(
    index: int, change: Callable[[dict[str, Any]], object]
) -> Callable[[list[bytes]], bytes]:
    """The archive with its line ``index`` (1: the user, 2: the key) changed."""

    def damage(lines: list[bytes]) -> bytes:
        line = json.loads(lines[index])
        change(line["record"])
        lines[index] = json.dumps(line).encode() + b"\n"
        return b"".join(lines)

    return damage


def _set(field: str, value: object) -> Callable[[dict[str, Any]], object]:
    return lambda record: record.__setitem__(field, value)


def _set_value(field: str, value: object) -> Callable[[dict[str, Any]], object]:
    return lambda record: record["value"].__setitem__(field, value)


BAD_RECORDS: dict[str, tuple[Callable[[list[bytes]], bytes], int, str]] = {
    # name: (damage, line named in the error, words in the error)
    "other namespace": (_with_record(1, _set("namespace", "trash")), 2, "no users or keys"),
    "missing field": (_with_record(1, lambda r: r.pop("expires_at")), 2, "exactly"),
    "user not an id": (_with_record(1, _set("key", "../x")), 2, "user id"),
    "bad expiry": (_with_record(2, _set("expires_at", "soon")), 3, "expires_at"),
    "not JSON values": (_with_record(1, _set("value", [1])), 2, "value"),
    "no name": (_with_record(1, _set_value("name", None)), 2, "name"),
    "bad hash": (_with_record(2, _set_value("hash", "abc")), 3, "SHA-256"),
    "no user id": (_with_record(2, _set_value("user_id", None)), 3, "user_id"),
    "bad created_at": (_with_record(1, _set_value("created_at", True)), 2, "created_at"),
    "twice": (lambda lines: b"".join([lines[0], lines[1], *lines[1:]]), 3, "appears twice"),
}


@pytest.mark.parametrize("damage", BAD_RECORDS)
def test_a_damaged_record_is_refused_and_changes_nothing(
    damage: str, source: ConversationStore, tmp_path: Path
) -> None:
    Accounts(source).add_user("Alice", user_id="alice")
    path = tmp_path / "damaged.jsonl"
    export_store(source, path)
    change, line, words = BAD_RECORDS[damage]
    path.write_bytes(change(path.read_bytes().splitlines(keepends=True)))
    with convstore.open("memory://") as target:
        with pytest.raises(DataIntegrityError) as raised:
            import_archive(target, path, replace=True)
        assert _accounts(target) == [] and snapshot(target) == {}
    message = raised.value.message
    assert f"line {line}:" in message and words in message, message


def test_a_damaged_user_name_is_refused(source: ConversationStore, tmp_path: Path) -> None:
    Accounts(source).add_user("Alice", user_id="alice")
    path = tmp_path / "damaged.jsonl"
    export_store(source, path)
    lines = path.read_bytes().splitlines(keepends=True)
    user = json.loads(lines[1])
    user["record"]["value"]["name"] = " "
    path.write_bytes(b"".join([lines[0], json.dumps(user).encode() + b"\n", *lines[2:]]))
    with pytest.raises(DataIntegrityError, match="line 2: user 'alice': name must not be empty"):
        verify_archive(path)
