"""Users and API keys: keys are shown once, stored hashed, and can be revoked."""

from __future__ import annotations

import json

import pytest

from convstore import ConcurrencyError, ConversationStore, InvalidInputError
from convstore.accounts import KEYS, USERS, Accounts


@pytest.fixture
def accounts(store: ConversationStore) -> Accounts:
    return Accounts(store)


def test_a_key_identifies_its_user(accounts: Accounts) -> None:
    user, key = accounts.add_user("Alice", user_id="alice")
    assert (user.id, user.name) == ("alice", "Alice")
    assert accounts.authenticate(key) == user
    second = accounts.issue_key("alice")
    assert second != key
    assert accounts.authenticate(second) == user
    assert accounts.list_users() == [user]
    assert accounts.get_user("alice") == user


def test_only_a_hash_of_the_secret_is_stored(store: ConversationStore, accounts: Accounts) -> None:
    _, key = accounts.add_user("Alice")
    secret = key.split("_", 2)[2]
    stored = json.dumps(store.list_records(KEYS))
    assert secret not in stored


@pytest.mark.parametrize(
    "tamper",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
        lambda k: "",
        lambda k: "cs_x",
        lambda k: None,
        lambda k: k.replace("cs_", "sk_"),
    ],
)
def test_wrong_keys_identify_nobody(accounts: Accounts, tamper: object) -> None:
    _, key = accounts.add_user("Alice")
    assert accounts.authenticate(tamper(key)) is None  # type: ignore[operator]


def test_a_revoked_key_stops_working(accounts: Accounts) -> None:
    user, key = accounts.add_user("Alice")
    other = accounts.issue_key(user.id)
    assert accounts.revoke_key(key)
    assert accounts.authenticate(key) is None
    assert accounts.authenticate(other) == user
    assert not accounts.revoke_key(key)
    assert accounts.revoke_key(other.split("_")[1])  # by key id
    with pytest.raises(InvalidInputError):
        accounts.revoke_key("not a key!")


def test_bad_users_are_refused(accounts: Accounts) -> None:
    accounts.add_user("Alice", user_id="alice")
    with pytest.raises(ConcurrencyError):
        accounts.add_user("Alice again", user_id="alice")
    with pytest.raises(InvalidInputError):
        accounts.add_user("  ")
    with pytest.raises(InvalidInputError):
        accounts.add_user("x", user_id="a/b")
    with pytest.raises(InvalidInputError):
        accounts.issue_key("nobody")
    assert [u.id for u in accounts.list_users()] == ["alice"]


def test_server_admins_are_marked_and_others_are_not(
    store: ConversationStore, accounts: Accounts
) -> None:
    root, key = accounts.add_user("Root", user_id="root", admin=True)
    plain, _ = accounts.add_user("Plain", user_id="plain")
    assert (root.is_admin, plain.is_admin) == (True, False)
    assert accounts.authenticate(key) == root
    assert [u.is_admin for u in accounts.list_users()] == [False, True]  # by id
    assert store.get_record(USERS, "root")["is_admin"] is True  # type: ignore[index]
    with pytest.raises(InvalidInputError):
        accounts.add_user("Odd", admin="yes")  # type: ignore[arg-type]


def test_users_stored_before_admins_existed_are_not_admins(
    store: ConversationStore, accounts: Accounts
) -> None:
    store.put_record(USERS, "old", {"name": "Old", "created_at": 1.0})
    old = accounts.get_user("old")
    assert old is not None
    assert (old.name, old.is_admin) == ("Old", False)
