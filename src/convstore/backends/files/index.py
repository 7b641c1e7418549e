"""The files backend's index: every conversation's fields and its files' identity, which
conversation each message is in, and the change feed beside them.

Listings and lookups by message id read the index instead of opening every conversation.
Each entry records its conversation files' size and identity, so a crash between a
conversation's journal line and the index's is noticed when the store opens and the
entry rebuilt from the files (see ``backend`` for the layout and the lock order).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convstore.backends.files.journal import JournaledFile, Mark
from convstore.backends.files.loaded import (
    FORMAT_VERSION,
    LoadedConversation,
    check_format,
    compaction_due,
)
from convstore.errors import DataIntegrityError
from convstore.fileio import write_atomic
from convstore.ids import is_valid_id
from convstore.models import Change, Conversation
from convstore.validation import dump_json

if TYPE_CHECKING:
    from convstore.backends.files.backend import FilesBackend

log = logging.getLogger(__name__)


@dataclass
class LoadedIndex:
    """The index as its files say, up to ``mark``: conversations' fields, their files'
    identity, and message ids."""

    conversations: dict[str, Conversation] = field(default_factory=dict)
    files: dict[str, list[Any]] = field(default_factory=dict)
    message_ids: dict[str, str] = field(default_factory=dict)
    last_change: int = 0
    applied: int = 0
    mark: Mark = field(default_factory=lambda: Mark(None, None, 0))

    def apply(self, entry: Mapping[str, Any]) -> None:
        """Apply one journal line (or a snapshot, given in the same shape)."""
        for conversation_id, item in entry.get("set", {}).items():
            self.conversations[conversation_id] = Conversation.model_validate(item["record"])
            self.files[conversation_id] = item["files"]
        for conversation_id in entry.get("drop", []):
            self.conversations.pop(conversation_id, None)
            self.files.pop(conversation_id, None)
        self.message_ids.update(entry.get("ids", {}))
        for message_id in entry.get("unids", []):
            self.message_ids.pop(message_id, None)
        self.last_change += entry.get("changes", 0)
        self.applied = entry["n"]

    def document(self) -> dict[str, Any]:
        """The snapshot file's contents."""
        return {
            "format": "convstore.index",
            "version": FORMAT_VERSION,
            "applied": self.applied,
            "last_change": self.last_change,
            "conversations": {
                cid: {"record": c.model_dump(mode="json"), "files": self.files[cid]}
                for cid, c in self.conversations.items()
            },
            "message_ids": self.message_ids,
        }


class FilesIndex:
    """The index files, the change feed, and the index as last read (shared by the
    backend's threads under its guard). Unless a method says otherwise, the caller holds
    the index lock."""

    def __init__(self, backend: FilesBackend, file: JournaledFile, changes_file: Path) -> None:
        self._backend = backend
        self.file = file
        self.changes_file = changes_file
        self._loaded: LoadedIndex | None = None

    def load(self) -> LoadedIndex:
        """The index as its files say now."""
        with self._backend.guard:
            if self._loaded is not None:
                newer = self.file.load_since(self._loaded.mark)
                if newer is not None:
                    for entry in newer.entries:
                        self._loaded.apply(entry)
                    self._loaded.mark = newer.mark
                    return self._loaded
            loaded = self.file.load()
            index = LoadedIndex()
            if loaded.snapshot is not None:
                check_format(loaded.snapshot, "convstore.index", self.file.snapshot)
                index.apply(
                    {
                        "n": loaded.snapshot["applied"],
                        "set": loaded.snapshot["conversations"],
                        "ids": loaded.snapshot["message_ids"],
                        "changes": loaded.snapshot["last_change"],
                    }
                )
            for entry in loaded.entries:
                index.apply(entry)
            index.mark = loaded.mark
            self._loaded = index
            return index

    def forget(self) -> None:
        """Drop the index as last read: the next read loads it from the files."""
        with self._backend.guard:
            self._loaded = None

    def update(self, entry: dict[str, Any], changes: list[dict[str, Any]]) -> None:
        """Append one entry (and the change feed lines) to the index; the caller holds the
        index lock exclusively."""
        with self._backend.guard:
            index = self.load()
            entry["n"] = index.applied + 1
            if changes:
                first = index.last_change + 1
                lines = [
                    dump_json({"id": first + i, **change}) + "\n"
                    for i, change in enumerate(changes)
                ]
                with open(self.changes_file, "a", encoding="utf-8") as feed:
                    feed.write("".join(lines))
                entry["changes"] = len(changes)
            index.mark = self.file.append(entry, index.mark)
            index.apply(entry)
            if compaction_due(self.file):
                index.mark = self.file.write_snapshot(index.document(), compress=False)

    def item(self, state: LoadedConversation) -> dict[str, Any]:
        """The index entry of a conversation: its fields and its files' identity."""
        return {
            "record": state.conversation.model_dump(mode="json"),
            "files": self.files_key(state.conversation.id),
        }

    def files_key(self, conversation_id: str) -> list[Any]:
        """What the index records of a conversation's files, to notice later changes."""
        files = self._backend.conversation_file(conversation_id)
        snapshot = files.snapshot.stat()
        return [snapshot.st_ino, snapshot.st_size, snapshot.st_mtime_ns, files.sizes()[1]]

    # the change feed ------------------------------------------------------------------

    def drop_changes(self, conversation_id: str) -> None:
        """Remove a deleted conversation's lines from the change feed (index lock held)."""
        if not self.changes_file.exists():
            return
        kept = [
            line
            for line in self.changes_file.read_text(encoding="utf-8").splitlines(keepends=True)
            if json.loads(line).get("conversation_id") != conversation_id
        ]
        write_atomic(self.changes_file, "".join(kept).encode("utf-8"), self._backend.temp_dir)

    def changes_since(self, mark: int, limit: int) -> list[Change]:
        """Up to ``limit`` changes after ``mark``, oldest first (takes the lock itself)."""
        with self._backend.index_lock(shared=True):
            if not self.changes_file.exists():
                return []
            lines = self.changes_file.read_text(encoding="utf-8").splitlines()
        entries = (json.loads(line) for line in lines if line)
        newer = [
            Change(e["id"], e["conversation_id"], e["kind"], e["payload"])
            for e in entries
            if e["id"] > mark
        ]
        return newer[:limit]

    # consistency (these take the locks themselves) -------------------------------------

    def reconcile(self) -> None:
        """Bring the index in line with the conversation files (after a crash, or when
        the index is missing), without holding the index lock while waiting for others."""
        backend = self._backend
        with backend.index_lock(shared=True):
            index = self.load()
            recorded = dict(index.files)
        on_disk = {
            path.stem for path in backend.conversations_dir.glob("*.json") if is_valid_id(path.stem)
        }
        stale = sorted(
            {cid for cid in on_disk if recorded.get(cid) != self._files_key_or_none(cid)}
            | (set(recorded) - on_disk)
        )
        for conversation_id in stale:
            try:
                self._reindex(conversation_id)
            except DataIntegrityError as exc:
                log.warning("not indexing a damaged conversation: %s", exc)
        if not self.file.exists():
            with backend.index_lock(shared=False), backend.guard:
                if not self.file.exists():
                    index = self.load()
                    index.mark = self.file.write_snapshot(index.document(), compress=False)

    def rebuild(self) -> None:
        """Delete the index files and build them again from the conversation files."""
        with self._backend.index_lock(shared=False), self._backend.guard:
            for stale in (self.file.snapshot, self.file.journal):
                stale.unlink(missing_ok=True)
            self._loaded = None
        self.reconcile()

    def _files_key_or_none(self, conversation_id: str) -> list[Any] | None:
        try:
            return self.files_key(conversation_id)
        except (FileNotFoundError, DataIntegrityError):  # reindexing will say what is wrong
            return None

    def _reindex(self, conversation_id: str) -> None:
        backend = self._backend
        with backend.conversation_lock(conversation_id, shared=False):
            state = backend.state(conversation_id)
            with backend.index_lock(shared=False):
                if state is None:
                    entry: dict[str, Any] = {"drop": [conversation_id], "unids": []}
                    entry["unids"] = [
                        mid
                        for mid, cid in self.load().message_ids.items()
                        if cid == conversation_id
                    ]
                else:
                    entry = {
                        "set": {conversation_id: self.item(state)},
                        "ids": dict.fromkeys(state.messages, conversation_id),
                    }
                log.info("reindexed conversation %s from its files", conversation_id)
                self.update(entry, [])
