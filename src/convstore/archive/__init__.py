"""The portable archive: any store's conversations, users and API keys as one versioned
JSON Lines file.

Layout, one JSON object per line (UTF-8)::

    {"format": "convstore-archive", "version": 1, "created_at": ..., "kind": ...,
     "source": ..., "since": ...}                                   the header
    {"type": "record", "record": {"namespace": "users", "key": ...,
     "value": {...}, "expires_at": null}}                           users and API keys
    {"type": "conversation", "record": {...}}                      a conversation,
    {"type": "message", "record": {...}}                           then its messages
    {"type": "deleted", "conversation_id": "..."}                  incremental archives
    {"type": "end", "conversations": N, "messages": M, "records": R, "sha256": "..."}

The trailer's sha256 covers the bytes of every line before it, so a truncated or
altered file is told apart from a whole one. A name ending in ``.gz`` is written
gzipped; reading recognises gzip by its magic bytes. Writing and reading stream: at
most one conversation is held in memory. An archive without record lines (one written
before users were exported, or with ``users=False``) reads as before.

The format and the writer live in :mod:`convstore.archive.format`, the reader in
:mod:`convstore.archive.reader`; this module exports or imports a whole store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from convstore import accounts
from convstore.archive.format import (
    ARCHIVE_KINDS,
    FORMAT,
    GZIP_MAGIC,
    VERSION,
    ArchiveCounts,
    ArchiveKind,
    ArchiveWriter,
    ConversationEntry,
    DeletedEntry,
    Entry,
    Header,
    Item,
    Progress,
    redact_url,
)
from convstore.archive.reader import ArchiveReader, verify_archive
from convstore.errors import ConcurrencyError
from convstore.models import Conversation
from convstore.store import ConversationStore, StoredRecord

__all__ = [
    "ARCHIVE_KINDS",
    "FORMAT",
    "GZIP_MAGIC",
    "PAGE_SIZE",
    "VERSION",
    "ArchiveCounts",
    "ArchiveKind",
    "ArchiveReader",
    "ArchiveWriter",
    "ConversationEntry",
    "DeletedEntry",
    "Entry",
    "Header",
    "Item",
    "Progress",
    "StoredRecord",
    "account_records",
    "export_store",
    "exported",
    "import_archive",
    "iter_conversations",
    "redact_url",
    "verify_archive",
]

PAGE_SIZE = 500


def iter_conversations(store: ConversationStore) -> Iterator[Conversation]:
    """Every conversation of the store, oldest first, a page at a time.

    Pages continue from the last creation time seen rather than from a running
    offset, so conversations deleted meanwhile do not make later ones be skipped.
    """
    after: float | None = None
    seen_at_after = 0
    while True:
        filters = None if after is None else {"created_after": math.nextafter(after, -math.inf)}
        page = store.list_conversations(
            order_by="created_at",
            descending=False,
            limit=PAGE_SIZE,
            offset=seen_at_after,
            filters=filters,
        )
        yield from page
        if len(page) < PAGE_SIZE:
            return
        last = page[-1].created_at
        ties = sum(1 for c in page if c.created_at == last)
        seen_at_after = ties + (seen_at_after if last == after else 0)
        after = last


def export_store(
    store: ConversationStore,
    path: str | Path,
    *,
    users: bool = True,
    on_progress: Progress | None = None,
) -> ArchiveCounts:
    """Write every conversation of ``store`` to a full archive at ``path``, after the
    users and their API keys (hashed, as stored) unless ``users`` is False."""
    total = store.count_conversations()
    header = Header(kind="full", created_at=time.time(), source=redact_url(store.url))
    with ArchiveWriter(path, header) as writer:
        for record in account_records(store) if users else []:
            writer.write_record(record)
        for done, entry in enumerate(exported(store, iter_conversations(store)), 1):
            writer.write_conversation(entry.conversation, entry.messages)
            if on_progress is not None:
                on_progress(done, max(total, done))
        return writer.commit()


def account_records(store: ConversationStore) -> list[StoredRecord]:
    """The store's users and API keys, as records (they never expire)."""
    return [
        StoredRecord(namespace, key, value, None)
        for namespace in accounts.NAMESPACES
        for key, value in store.list_records(namespace)
    ]


def exported(
    store: ConversationStore, conversations: Iterable[Conversation]
) -> Iterator[ConversationEntry]:
    """Each conversation with its messages, read one at a time; deleted ones skipped."""
    for conversation in conversations:
        record = store.export_conversation(conversation.id)
        if record is not None:
            yield ConversationEntry(*record)


def import_archive(
    store: ConversationStore,
    path: str | Path,
    *,
    replace: bool = False,
    on_progress: Progress | None = None,
) -> ArchiveCounts:
    """Import an archive into ``store``, after checking all of it: its users and API
    keys first, then its conversations.

    Without ``replace``, a conversation the store already has, or a user or key it
    holds with other values, is a ConcurrencyError and nothing is imported. With it,
    such conversations and records are replaced and the archive's deletions are
    applied. A damaged archive raises DataIntegrityError and leaves the store unchanged.
    """
    counts, records = _check_importable(store, Path(path), replace)
    done = ArchiveCounts(records=len(records))
    if records:
        store.import_records(records)
    with ArchiveReader(path) as reader:
        for entry in reader.entries():
            if isinstance(entry, ConversationEntry):
                store.import_conversation(entry.conversation, entry.messages, replace=replace)
                done.conversations += 1
                done.messages += len(entry.messages)
                if on_progress is not None:
                    on_progress(done.conversations, counts.conversations)
            elif isinstance(entry, DeletedEntry) and replace:
                done.deleted += store.delete_conversation(entry.conversation_id)
    return done


def _check_importable(
    store: ConversationStore, path: Path, replace: bool
) -> tuple[ArchiveCounts, list[StoredRecord]]:
    """Read the archive through once, so that nothing is written from a damaged one;
    its counts and its records (few: users and keys)."""
    records = []
    with ArchiveReader(path) as reader:
        for entry in reader.entries():
            if isinstance(entry, StoredRecord):
                if not replace:
                    _check_record_is_new(store, entry)
                records.append(entry)
            elif (
                not replace
                and isinstance(entry, ConversationEntry)
                and store.get_conversation(entry.conversation.id) is not None
            ):
                raise ConcurrencyError(
                    f"conversation {entry.conversation.id!r} already exists; "
                    "import with replace (--replace) to overwrite it"
                )
        return reader.counts, records


def _check_record_is_new(store: ConversationStore, record: StoredRecord) -> None:
    """Refuse to import over a user or key the store holds with other values."""
    held = store.get_record(record.namespace, record.key)
    if held is not None and held != record.value:
        what = "user" if record.namespace == accounts.USERS else "API key"
        raise ConcurrencyError(
            f"{what} {record.key!r} already exists with other values; "
            "import with replace (--replace) to overwrite it"
        )
