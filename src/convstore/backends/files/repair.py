"""Integrity checks and repair of a files store: counters against messages, the index
against the conversation files, torn journal tails, damaged files set aside."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from convstore.backends.base import RepairReport
from convstore.backends.files.journal import JournaledFile
from convstore.backends.files.loaded import LoadedConversation, recounted
from convstore.errors import DataIntegrityError
from convstore.ids import is_valid_id

if TYPE_CHECKING:
    from convstore.backends.files.backend import FilesBackend


def repair_store(backend: FilesBackend) -> RepairReport:
    """Cut torn journal tails, set aside damaged conversation files (into
    ``temp/damaged``, never deleted), fix counters, and rebuild the index."""
    report = RepairReport()
    for path in sorted(backend.conversations_dir.glob("*.json")):
        if is_valid_id(path.stem):
            _repair_conversation(backend, path.stem, report)
    backend.index.rebuild()
    report.actions.append("rebuilt the index from the conversation files")
    return report


def _repair_conversation(backend: FilesBackend, conversation_id: str, report: RepairReport) -> None:
    """Repair one conversation's files under its exclusive lock, reading them afresh."""
    files = backend.conversation_file(conversation_id)
    with backend.conversation_lock(conversation_id, shared=False):
        backend.forget(conversation_id)
        try:
            state = backend.state(conversation_id)
        except DataIntegrityError as exc:
            report.actions.append(f"set aside {_quarantine(backend, files)} ({exc})")
            report.set_aside.append(conversation_id)
            return
        cut = files.cut_torn_tail()
        if cut:
            report.actions.append(f"cut a torn {cut}-byte tail off {files.journal}")
        if state is not None and list(_state_problems(state, files.snapshot)):
            state.conversation = recounted(state)
            state.mark = files.write_snapshot(state.document(), compress=backend.compress)
            report.actions.append(f"recounted the messages of {files.snapshot}")


def _quarantine(backend: FilesBackend, files: JournaledFile) -> Path:
    """Move damaged conversation files into a dated ``temp/damaged`` folder."""
    damaged = backend.temp_dir / "damaged" / time.strftime("%Y%m%dT%H%M%S")
    damaged.mkdir(parents=True, exist_ok=True)
    for path in (files.snapshot, files.journal):
        if path.exists():
            path.replace(damaged / path.name)
    backend.forget(files.snapshot.stem)
    return damaged / files.snapshot.name


def store_problems(backend: FilesBackend) -> Iterator[str]:
    """What is wrong with the store's files, one line each (nothing when it is sound)."""
    with backend.index_lock(shared=True):
        index = backend.index.load()
        indexed = dict(index.conversations)
    seen = set()
    for path in sorted(backend.conversations_dir.glob("*.json")):
        if not is_valid_id(path.stem):
            yield f"{path}: not a conversation file name"
            continue
        seen.add(path.stem)
        try:
            with backend.conversation_lock(path.stem, shared=True):
                state = backend.state(path.stem)
        except DataIntegrityError as exc:
            yield str(exc)
            continue
        if state is None:
            continue
        yield from _state_problems(state, path)
        entry = indexed.get(path.stem)
        if entry is None or entry.version != state.conversation.version:
            yield f"{backend.index.file.snapshot}: disagrees with {path}"
    for missing in sorted(set(indexed) - seen):
        yield f"{backend.index.file.snapshot}: lists {missing}, which has no file"


def _state_problems(state: LoadedConversation, path: Path) -> Iterator[str]:
    """Where a conversation's counters disagree with its messages."""
    conversation, messages = state.conversation, state.messages
    if conversation.message_count != len(messages):
        yield f"{path}: message_count {conversation.message_count} but {len(messages)} messages"
    if messages and max(m.seq for m in messages.values()) > conversation.last_seq:
        yield f"{path}: last_seq {conversation.last_seq} below a stored seq"
    if conversation.head_message_id is not None and conversation.head_message_id not in messages:
        yield f"{path}: head message {conversation.head_message_id} is missing"
    if len({m.seq for m in messages.values()}) != len(messages):
        yield f"{path}: seq values repeat"
