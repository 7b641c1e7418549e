"""Hostile input through every write entry point, on every backend: each call either
succeeds, and what it wrote reads back exactly, or raises a typed error and changes
nothing; either way the store still exports, backs up and searches afterwards."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

import convstore
from convstore import (
    Conversation,
    ConversationManagerError,
    ConversationStore,
    InvalidInputError,
    Message,
    Usage,
)
from convstore.archive import Header, export_store, import_archive, verify_archive
from convstore.backup import backups_for
from convstore.ids import new_id
from convstore.store import StoredRecord
from convstore.transfer import copy_store
from convstore.validation import MAX_JSON_ITEMS, NOTE_ROOM
from tests.hostile import (
    CONTENT,
    FLOATS,
    INTEGERS,
    MESSAGES,
    OBJECTS,
    ROLES,
    TEXT,
    USAGE,
    canonical,
)

T = TypeVar("T")
_runs = itertools.count()


class Probe:
    """One example's calls against the store, each checked as described above."""

    def __init__(self, store: ConversationStore, data: st.DataObject, directory: Path) -> None:
        self.store, self.data, self.directory = store, data, directory

    def draw(self, strategy: st.SearchStrategy[T]) -> T:
        return self.data.draw(strategy)

    def attempt(self, name: str, call: Callable[[], T], watched: list[str]) -> T | None:
        """The call's result, or None if it raised a typed error, in which case the
        conversations in ``watched`` and the probe's records are as they were."""
        before = self.state(watched)
        try:
            result = call()
        except ConversationManagerError as exc:
            event(f"{name}: {exc.code}")
            assert self.state(watched) == before
            return None
        event(f"{name}: done")
        return result

    def state(self, watched: list[str]) -> list[Any]:
        exported = [self.store.export_conversation(c) for c in watched]
        return [*exported, self.store.list_records("probe")]

    def same_message(self, message: Message | None, wanted: dict[str, Any]) -> None:
        """The stored message holds what was given for it, exactly."""
        assert message is not None
        assert message.role.value == wanted["role"]
        assert canonical(message.content) == canonical(wanted["content"])
        assert canonical(message.metadata) == canonical(wanted.get("metadata") or {})
        assert message.type == wanted.get("type", "text")
        same_usage(message.usage, wanted.get("usage"))


def same_usage(usage: Usage | None, wanted: dict[str, Any] | None) -> None:
    if wanted is None:
        assert usage is None
        return
    assert usage is not None
    assert usage.model_dump() == Usage(**wanted).model_dump()


def conversations(probe: Probe) -> str:
    """create_conversation with hostile fields and first messages; the id of a
    conversation to go on with (a plain one if that was refused)."""
    name, description = probe.draw(TEXT), probe.draw(st.none() | TEXT)
    metadata = probe.draw(OBJECTS)
    first = probe.draw(st.lists(MESSAGES, max_size=2))
    store = probe.store
    created = probe.attempt(
        "create_conversation",
        lambda: store.create_conversation(
            name, description=description, metadata=metadata, initial_messages=first
        ),
        [],
    )
    if created is None:
        return store.create_conversation("plain").id
    stored = store.get_conversation(created.id)
    assert stored is not None and (stored.name, stored.description) == (name, description)
    assert canonical(stored.metadata) == canonical(metadata or {})
    for message, wanted in zip(store.get_messages(created.id), first, strict=True):
        probe.same_message(message, wanted)
    changes = {"name": probe.draw(st.none() | TEXT), "metadata": probe.draw(OBJECTS)}
    changes["description"] = probe.draw(st.none() | TEXT)
    if probe.attempt(
        "update_conversation",
        lambda: store.update_conversation(created.id, **changes),
        [created.id],
    ):
        updated = store.get_conversation(created.id)
        assert updated is not None
        for field, value in changes.items():
            if value is not None:
                assert canonical(getattr(updated, field)) == canonical(value), field
    return created.id


def messages(probe: Probe, chat: str) -> None:
    """append_message, append_messages and update_message with hostile fields."""
    store = probe.store
    one = probe.draw(MESSAGES)
    appended = probe.attempt(
        "append_message",
        lambda: store.append_message(
            chat,
            one["role"],
            one["content"],
            metadata=one.get("metadata"),
            type=one.get("type", "text"),
            usage=one.get("usage"),
        ),
        [chat],
    )
    if appended is not None:
        probe.same_message(store.get_message(chat, appended.id), one)
    batch = probe.draw(st.lists(MESSAGES, min_size=1, max_size=3))
    appended_all = probe.attempt(
        "append_messages", lambda: store.append_messages(chat, batch), [chat]
    )
    for message, wanted in zip(appended_all or [], batch, strict=appended_all is not None):
        probe.same_message(store.get_message(chat, message.id), wanted)
    target = store.append_message(chat, "user", "plain")
    content, metadata = probe.draw(st.none() | CONTENT), probe.draw(OBJECTS)
    edit = probe.attempt(
        "update_message",
        lambda: store.update_message(chat, target.id, content=content, metadata=metadata),
        [chat],
    )
    if edit is not None:
        wanted = {"role": "user", "content": "plain" if content is None else content}
        probe.same_message(store.get_message(chat, target.id), {**wanted, "metadata": metadata})


def streams(probe: Probe, chat: str) -> None:
    """begin_stream, append_chunks and finalize_stream with hostile fields."""
    store = probe.store
    metadata, kind = probe.draw(OBJECTS), probe.draw(TEXT)
    begun = probe.attempt(
        "begin_stream", lambda: store.begin_stream(chat, metadata=metadata, type=kind), [chat]
    )
    if begun is None:
        begun = store.begin_stream(chat)
        metadata, kind = None, "text"
    deltas = probe.draw(st.lists(TEXT, min_size=1, max_size=3))
    sent = probe.attempt(
        "append_chunks", lambda: store.append_chunks(chat, begun.id, deltas), [chat]
    )
    if sent is not None:
        assert [c.delta for c in store.get_chunks(chat, begun.id)] == deltas
    reason, usage = probe.draw(TEXT), probe.draw(USAGE)
    done = probe.attempt(
        "finalize_stream",
        lambda: store.finalize_stream(chat, begun.id, finish_reason=reason, usage=usage),
        [chat],
    )
    if done is None:
        store.finalize_stream(chat, begun.id)
        return
    settled = store.get_message(chat, begun.id)
    wanted = {"role": "assistant", "content": "".join(deltas) if sent else "", "type": kind}
    note = {**(metadata or {}), "finish_reason": reason}
    probe.same_message(settled, {**wanted, "metadata": note, "usage": usage})


def records(probe: Probe) -> None:
    """put_record and import_records (as copying a store does) with a hostile key, value
    and lifetime or expiry."""
    store = probe.store
    key, value = probe.draw(TEXT), probe.draw(OBJECTS) or {}
    ttl = probe.draw(st.none() | SECONDS)
    kept = probe.attempt("put_record", lambda: store.put_record("probe", key, value, ttl=ttl), [])
    if kept:
        found = store.get_record("probe", key)
        assert found is not None and canonical(found) == canonical(value)
    expiry = probe.draw(st.none() | st.floats(4e9, 5e9) | EXTREME_SECONDS)
    given = StoredRecord("probe", f"imported-{next(_runs)}", probe.draw(OBJECTS) or {}, expiry)
    if probe.attempt("import_records", lambda: store.import_records([given]) or True, []):
        found = store.get_record("probe", given.key)
        assert found is not None and canonical(found) == canonical(given.value)


EXTREME_SECONDS = st.sampled_from([math.inf, -math.inf, math.nan, 1e308, 10**400])
SECONDS = st.one_of(st.sampled_from([0.0, -1.0]), EXTREME_SECONDS, st.floats(1, 1e9))


def hostile_records(probe: Probe) -> tuple[Conversation, list[Message]]:
    """A conversation and its one message as an importer reads them, hostile fields
    included (the models check types, not what a backend can hold)."""
    ids = new_id(), new_id()
    usage = probe.draw(USAGE)
    message = Message(
        id=ids[1],
        conversation_id=ids[0],
        seq=probe.draw(st.just(1) | INTEGERS),
        role=probe.draw(ROLES),
        type=probe.draw(st.just("text") | TEXT),
        content=probe.draw(CONTENT),
        created_at=probe.draw(st.just(1.0) | FLOATS),
        updated_at=1.0,
        metadata=probe.draw(OBJECTS) or {},
        usage=None if usage is None else Usage(**usage),
    )
    conversation = Conversation(
        id=ids[0],
        name=probe.draw(TEXT),
        description=probe.draw(st.none() | TEXT),
        head_message_id=ids[1],
        created_at=1.0,
        updated_at=probe.draw(st.just(2.0) | FLOATS),
        metadata=probe.draw(OBJECTS) or {},
        version=probe.draw(st.just(3) | INTEGERS),
        message_count=1,
        last_seq=max(message.seq, 1),
        prompt_tokens=probe.draw(st.just(0) | INTEGERS),
    )
    return conversation, [message]


def imports(probe: Probe) -> None:
    """import_conversation directly (as copying a store does) and through an archive."""
    store = probe.store
    direct = hostile_records(probe)
    done = probe.attempt(
        "import_conversation", lambda: store.import_conversation(*direct) or True, [direct[0].id]
    )
    read_back(probe, direct, done is not None)
    archived = hostile_records(probe)
    path = write_raw_archive(probe.directory / f"in-{next(_runs)}.jsonl", *archived)
    counts = probe.attempt("import_archive", lambda: import_archive(store, path), [archived[0].id])
    read_back(probe, archived, counts is not None)


def read_back(probe: Probe, given: tuple[Conversation, list[Message]], imported: bool) -> None:
    """An imported conversation reads back exactly as it was given."""
    if imported:
        found = probe.store.export_conversation(given[0].id)
        assert found is not None
        assert canonical(dumped(found)) == canonical(dumped(given))


def dumped(records: tuple[Conversation, list[Message]]) -> list[dict[str, Any]]:
    return [record.model_dump() for record in (records[0], *records[1])]


def write_raw_archive(path: Path, conversation: Conversation, messages: list[Message]) -> Path:
    """An archive as a hostile file holds it: each value as JSON text of any kind (NaN,
    escaped lone surrogates, long integers), the checksum right."""
    header = Header(kind="full", created_at=1.0, source="hostile").to_json()
    lines = [header, {"type": "conversation", "record": conversation.model_dump(mode="python")}]
    lines += [{"type": "message", "record": m.model_dump(mode="python")} for m in messages]
    encoded = [json.dumps(line, ensure_ascii=True).encode() + b"\n" for line in lines]
    digest = hashlib.sha256(b"".join(encoded)).hexdigest()
    trailer = {"type": "end", "conversations": 1, "messages": len(messages), "sha256": digest}
    path.write_bytes(b"".join([*encoded, json.dumps(trailer).encode() + b"\n"]))
    return path


def still_whole(probe: Probe) -> None:
    """The store exports (and the export reads back clean), backs up and searches."""
    path = probe.directory / f"export-{next(_runs)}.jsonl"
    export_store(probe.store, path)
    verify_archive(path)
    backups_for(probe.store, probe.directory / "backups").full_backup()
    probe.store.search_messages("plain", limit=5)
    for conversation in probe.store.list_conversations(limit=None):
        probe.store.get_messages(conversation.id)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_hostile_input_is_kept_exactly_or_refused(
    store: ConversationStore, tmp_path: Path, data: st.DataObject
) -> None:
    probe = Probe(store, data, tmp_path)
    chat = conversations(probe)
    messages(probe, chat)
    streams(probe, chat)
    records(probe)
    imports(probe)
    still_whole(probe)


# values at the limits, moved between stores -------------------------------------------


def test_metadata_at_the_limit_keeps_room_for_the_note_of_a_finished_stream(
    store: ConversationStore, tmp_path: Path
) -> None:
    chat = store.create_conversation("chat").id
    fullest = {"v": [0] * (MAX_JSON_ITEMS - NOTE_ROOM - 1)}  # the key is a member too
    with pytest.raises(InvalidInputError, match="more than 99999 members"):
        store.begin_stream(chat, metadata={"v": [*fullest["v"], 0]})
    reply = store.begin_stream(chat, metadata=fullest).id
    store.append_chunks(chat, reply, ["done"])
    done = store.finalize_stream(chat, reply, finish_reason="stop")
    assert done.metadata == {**fullest, "finish_reason": "stop"}  # MAX_JSON_ITEMS in all
    export_store(store, tmp_path / "full.jsonl")
    with convstore.open("memory://") as target:
        import_archive(target, tmp_path / "full.jsonl")
        assert target.get_message(chat, reply) == done


def test_a_large_softly_deleted_conversation_moves_to_another_store(tmp_path: Path) -> None:
    with convstore.open("memory://") as source, convstore.open(f"file://{tmp_path}") as target:
        chat = source.create_conversation("big").id
        for _ in range(3):  # one JSON value of it all holds more than a record may
            source.append_message(chat, "user", "x", metadata={"v": [0] * 40_000})
        source.delete_conversation(chat, soft=True)
        copy_store(source, target)
        restored = target.restore_conversation(chat)
        assert [m.metadata for m in target.get_messages(chat)] == [{"v": [0] * 40_000}] * 3
        assert restored.message_count == 3
        [trashed] = [r for r in source.export_records() if r.key == chat]
        poisoned = dict(trashed.value)
        poisoned["messages"] = [{**m, "content": "\x00"} for m in trashed.value["messages"]]
        with pytest.raises(InvalidInputError, match="content contains a NUL"):
            target.import_records([replace(trashed, value=poisoned)])
