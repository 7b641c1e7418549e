"""Users and their API keys, kept as records in the store (so every server process
sharing the store shares them).

A key reads ``cs_<key id>_<secret>``. Only the SHA-256 of the secret is stored: the
secret is 256 random bits, so a fast hash is enough (there is no password to guess), and
a stolen copy of the store yields no usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from convstore.errors import ConcurrencyError, InvalidInputError
from convstore.ids import check_id, is_valid_id, new_id
from convstore.store import ConversationStore
from convstore.validation import check_text

USERS = "users"
KEYS = "api-keys"
NAMESPACES = (USERS, KEYS)
"""The record namespaces accounts live in (an export carries these)."""
_PREFIX = "cs"
_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_USER_NAME = 200


@dataclass(frozen=True)
class User:
    """Someone who may use the API; conversations they create are theirs. A server
    admin may also read the server's health details and metrics (store-wide figures);
    it sees no other user's conversations."""

    id: str
    name: str
    created_at: float
    is_admin: bool = False


class Accounts:
    """Add users, issue and revoke their keys, and tell who a key belongs to."""

    def __init__(self, store: ConversationStore) -> None:
        self._store = store

    def add_user(
        self, name: str, *, user_id: str | None = None, admin: bool = False
    ) -> tuple[User, str]:
        """Create a user (a server admin if ``admin``) and a first key; the key is
        returned only this once."""
        name = check_text(name, "name", MAX_USER_NAME).strip()
        if not name:
            raise InvalidInputError("name must not be empty")
        if not isinstance(admin, bool):
            raise InvalidInputError(f"admin must be True or False, not {type(admin).__name__}")
        user = User(user_id or new_id(), name, time.time(), admin)
        check_id(user.id, "user_id")
        record = {"name": name, "created_at": user.created_at, "is_admin": admin}
        if not self._store.put_record(USERS, user.id, record):
            raise ConcurrencyError(f"user {user.id!r} already exists")
        return user, self.issue_key(user.id)

    def get_user(self, user_id: str) -> User | None:
        check_id(user_id, "user_id")
        return _user(user_id, self._store.get_record(USERS, user_id))

    def find_user(self, name_or_id: str) -> User:
        """The user with this id or, failing that, the only user with this name.

        People remember the name they gave (``users add alice``), not the generated id,
        so both are accepted; a name several users share must be given as an id.
        """
        name_or_id = check_text(name_or_id, "user", MAX_USER_NAME).strip()
        if is_valid_id(name_or_id) and (user := self.get_user(name_or_id)) is not None:
            return user
        named = [user for user in self.list_users() if user.name == name_or_id]
        if not named:
            raise InvalidInputError(f"there is no user {name_or_id!r} (by id or name)")
        if len(named) > 1:
            ids = ", ".join(user.id for user in named)
            raise InvalidInputError(
                f"{len(named)} users are named {name_or_id!r} (ids {ids}): give the id"
            )
        return named[0]

    def list_users(self) -> list[User]:
        """Every user, by id (which is also by creation time)."""
        return [
            user
            for user_id, value in self._store.list_records(USERS)
            if (user := _user(user_id, value)) is not None
        ]

    def issue_key(self, user_id: str) -> str:
        """A new key for the user (they may hold several); returned only this once."""
        if self.get_user(user_id) is None:
            raise InvalidInputError(f"there is no user {user_id!r}")
        key_id, secret = new_id(), secrets.token_urlsafe(32)
        record = {"user_id": user_id, "hash": _digest(secret), "created_at": time.time()}
        self._store.put_record(KEYS, key_id, record)
        return f"{_PREFIX}_{key_id}_{secret}"

    def authenticate(self, key: object) -> User | None:
        """The user the key belongs to; None for a malformed, unknown or revoked key."""
        parts = _parts(key)
        if parts is None:
            return None
        key_id, secret = parts
        record = self._store.get_record(KEYS, key_id)
        if record is None or not hmac.compare_digest(str(record["hash"]), _digest(secret)):
            return None
        return self.get_user(str(record["user_id"]))

    def revoke_key(self, key: str) -> bool:
        """Revoke a key, given whole or by its id (the part after ``cs_``); False if
        there was no such key."""
        parts = _parts(key)
        key_id = parts[0] if parts is not None else key
        if not isinstance(key_id, str) or not is_valid_id(key_id):
            raise InvalidInputError("key must be an API key or a key id")
        return self._store.delete_record(KEYS, key_id)


def check_record(namespace: str, key: str, value: dict[str, Any]) -> None:
    """Refuse a user or key record that Accounts could not use (one read from an
    archive, say); other fields than those Accounts reads are let through."""
    if namespace not in NAMESPACES:
        raise InvalidInputError(f"namespace {namespace!r} holds no users or keys")
    what = "user" if namespace == USERS else "key"
    check_id(key, f"{what} id")
    created_at = value.get("created_at")
    if (
        isinstance(created_at, bool)
        or not isinstance(created_at, int | float)
        or not math.isfinite(created_at)
    ):
        raise InvalidInputError(f"{what} {key!r}: created_at must be epoch seconds")
    if namespace == USERS:
        name = check_text(value.get("name"), f"user {key!r}: name", MAX_USER_NAME)
        if not name.strip():
            raise InvalidInputError(f"user {key!r}: name must not be empty")
    else:
        check_id(value.get("user_id"), f"key {key!r}: user_id")
        digest = value.get("hash")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise InvalidInputError(f"key {key!r}: hash must be a SHA-256 in hex")


def _parts(key: object) -> tuple[str, str] | None:
    if not isinstance(key, str):
        return None
    pieces = key.split("_", 2)
    if len(pieces) != 3 or pieces[0] != _PREFIX or not is_valid_id(pieces[1]) or not pieces[2]:
        return None
    return pieces[1], pieces[2]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _user(user_id: str, value: dict[str, Any] | None) -> User | None:
    """The user a record describes (records written before admins existed: not admin)."""
    if value is None:
        return None
    admin = value.get("is_admin", False) is True
    return User(user_id, str(value["name"]), float(value["created_at"]), admin)
