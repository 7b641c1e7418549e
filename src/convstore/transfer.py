"""Moving a whole store to another backend: streamed, resumable, verified.

Conversations are copied one at a time (memory stays bounded), each with its messages
exactly as stored (ids, seq, times, versions). A conversation the target already holds
in the same state is skipped, so running an interrupted copy again finishes it. At the
end every conversation is read back from both stores and compared by checksum. Records
(accounts, API keys, idempotency keys, softly deleted conversations) go along.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from convstore.archive import iter_conversations
from convstore.errors import DataIntegrityError
from convstore.models import Conversation, Message
from convstore.store import ConversationStore

Progress = Callable[[int, int | None], object]


@dataclass(frozen=True)
class TransferReport:
    """What a copy did: conversations copied and skipped (already there), messages
    copied, and the checksum both stores agree on."""

    copied: int
    skipped: int
    messages: int
    records: int
    checksum: str


def copy_store(
    source: ConversationStore,
    target: ConversationStore,
    *,
    on_progress: Progress | None = None,
) -> TransferReport:
    """Copy every conversation of ``source`` into ``target`` and verify the result.

    Raises DataIntegrityError if, after copying, the two stores disagree.
    """
    total = source.count_conversations()
    copied = skipped = messages = 0
    for done, conversation in enumerate(iter_conversations(source), start=1):
        record = source.export_conversation(conversation.id)
        if record is None:  # deleted while the copy ran
            continue
        if target.export_conversation(conversation.id) == record:
            skipped += 1
        else:
            target.import_conversation(*record, replace=True)
            copied += 1
            messages += len(record[1])
        if on_progress is not None:
            on_progress(done, total)
    records = source.export_records()
    target.import_records(records)
    return TransferReport(copied, skipped, messages, len(records), verify(source, target))


def verify(source: ConversationStore, target: ConversationStore) -> str:
    """The checksum of every conversation of ``source``, after checking that ``target``
    holds each one identically; DataIntegrityError names the first that differs."""
    digest = hashlib.sha256()
    for conversation in iter_conversations(source):
        record = source.export_conversation(conversation.id)
        if record is None:
            continue
        mine = checksum(*record)
        copy = target.export_conversation(conversation.id)
        if copy is None or checksum(*copy) != mine:
            raise DataIntegrityError(
                f"conversation {conversation.id} differs between {source.url} and {target.url}"
            )
        digest.update(mine.encode())
    held = {(r.namespace, r.key): r for r in target.export_records()}
    missing = [r for r in source.export_records() if held.get((r.namespace, r.key)) != r]
    if missing:
        raise DataIntegrityError(
            f"record {missing[0].namespace}/{missing[0].key} differs between "
            f"{source.url} and {target.url}"
        )
    source_count, target_count = source.count_messages(), target.count_messages()
    if target_count < source_count:
        raise DataIntegrityError(
            f"{target.url} holds {target_count} messages, fewer than the {source_count} copied"
        )
    return digest.hexdigest()


def checksum(conversation: Conversation, messages: list[Message]) -> str:
    """A conversation and its messages as a stable sha256 (field order and backend aside)."""
    document = {
        "conversation": conversation.model_dump(mode="json"),
        "messages": [m.model_dump(mode="json") for m in messages],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
