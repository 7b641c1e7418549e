"""Records: small JSON documents under a namespace and key, with an optional lifetime.

Accounts, API keys and idempotency keys live here, and so does the trash: a softly
deleted conversation is kept as one record of the store's own ``_trash`` namespace
until it is restored or expires.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from convstore.errors import ConcurrencyError, InvalidInputError
from convstore.models import Conversation, Message
from convstore.record_checks import check_records
from convstore.retry import retried
from convstore.store.core import StoreCore
from convstore.validation import check_metadata, check_seconds, check_text

TRASH = "_trash"  # the records namespace of softly deleted conversations
_NAMESPACE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_MAX_RECORD_KEY = 255


@dataclass(frozen=True)
class StoredRecord:
    """A record with its place and lifetime, as export_records gives it."""

    namespace: str
    key: str
    value: dict[str, Any]
    expires_at: float | None


class Records(StoreCore):
    """The record methods of the store."""

    @retried
    def put_record(
        self, namespace: str, key: str, value: dict[str, Any], *, ttl: float | None = None
    ) -> bool:
        """Keep a small JSON document under ``namespace`` and ``key`` (for ``ttl``
        seconds, or for good), unless one is already there: False in that case.

        Records are store-wide (a user's view sees them all): accounts and idempotency
        keys live here.
        """
        namespace, key = check_record_key(namespace, key)
        value = check_metadata(value, "value")
        ttl = check_seconds(ttl, "ttl", optional=True, positive=True)
        expires_at = None if ttl is None else time.time() + ttl
        try:
            with self._unit(write=True) as session:
                found = session.get_record(namespace, key)
                if found is not None:
                    if not expired(found[1]):
                        return False
                    session.delete_record(namespace, key)
                session.insert_record(namespace, key, value, expires_at)
        except ConcurrencyError:  # another writer inserted the same key first
            return False
        return True

    @retried
    def get_record(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The record's value; None if there is none or it expired."""
        namespace, key = check_record_key(namespace, key)
        with self._unit(write=False) as session:
            found = session.get_record(namespace, key)
        return None if found is None or expired(found[1]) else found[0]

    @retried
    def list_records(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        """(key, value) of the namespace's live records, by key."""
        namespace, _ = check_record_key(namespace, "")
        with self._unit(write=False) as session:
            found = session.list_records(namespace)
        return [(key, value) for _, key, value, expires_at in found if not expired(expires_at)]

    @retried
    def export_records(self) -> list[StoredRecord]:
        """Every live record of every namespace, with its expiry (for moving a store)."""
        with self._unit(write=False) as session:
            found = session.list_records(None)
        return [StoredRecord(*row) for row in found if not expired(row[3])]

    @retried
    def import_records(self, records: Iterable[StoredRecord]) -> None:
        """Store records exactly as given (expiry kept), replacing any of the same key."""
        checked = []
        for record in records:
            check_record_key(record.namespace, record.key, internal=True)
            expiry = check_seconds(record.expires_at, "expires_at", optional=True)
            if record.namespace == TRASH:  # a whole conversation, checked as its import
                value = _checked_trash(record.value)
            else:
                value = check_metadata(record.value, "value")
            checked.append(replace(record, value=value, expires_at=expiry))
        with self._unit(write=True) as session:
            for record in checked:
                session.delete_record(record.namespace, record.key)
                session.insert_record(record.namespace, record.key, record.value, record.expires_at)

    @retried
    def delete_record(self, namespace: str, key: str) -> bool:
        """Delete the record; False if there was none."""
        namespace, key = check_record_key(namespace, key)
        with self._unit(write=True) as session:
            return session.delete_record(namespace, key)


def check_record_key(namespace: object, key: object, *, internal: bool = False) -> tuple[str, str]:
    """The namespace and key if valid; ``internal`` admits the store's own namespaces."""
    if internal and namespace == TRASH:
        return TRASH, check_text(key, "key", _MAX_RECORD_KEY)
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise InvalidInputError(
            f"namespace must be 1-64 of a-z, 0-9, _ . - starting with a letter; got {namespace!r}"
        )
    return namespace, check_text(key, "key", _MAX_RECORD_KEY)


def expired(expires_at: float | None) -> bool:
    """Whether a record with this expiry time is gone."""
    return expires_at is not None and expires_at <= time.time()


def trash_form(conversation: Conversation, messages: Sequence[Message]) -> dict[str, Any]:
    """The record that keeps a softly deleted conversation."""
    return {
        "conversation": conversation.model_dump(mode="json"),
        "messages": [m.model_dump(mode="json") for m in messages],
    }


def from_trash_form(document: Mapping[str, Any]) -> tuple[Conversation, list[Message]]:
    """The conversation and messages a trash record keeps."""
    conversation = Conversation.model_validate(document["conversation"])
    return conversation, [Message.model_validate(m) for m in document["messages"]]


def _checked_trash(document: Any) -> dict[str, Any]:
    """A softly deleted conversation given to import_records, checked as an import of
    the conversation would be (as one JSON value it may well pass a record's limits)."""
    try:
        check_records(*from_trash_form(document))
    except (ValidationError, KeyError, TypeError) as exc:
        problem = str(exc).splitlines()[0]
        raise InvalidInputError(f"a trash record is not a conversation: {problem}") from None
    return dict(document)
