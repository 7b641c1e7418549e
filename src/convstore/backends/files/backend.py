"""FilesBackend: the Backend protocol on the seed's directory of JSON files.

Layout under the store's directory::

    conversations/{id}.json      the conversation and its messages (JSON snapshot)
    conversations/{id}.journal   changes since the snapshot, one JSON line each
    conversations/{id}.lock      readers share it, a writer holds it alone
    index/conversations.idx      every conversation's fields and counters (snapshot)
    index/conversations.journal  changes to the index since that snapshot
    index/changes.log            the change feed, one JSON line per change
    index/index.lock             guards the index files
    records/records.json         small JSON documents by namespace and key (snapshot)
    records/records.journal      changes to them since that snapshot
    records/records.lock         guards the records files
    backups/                     backups (see convstore.backup)
    temp/                        files being written, renamed into place when whole

Locks are always taken in one order, conversation locks before the index lock, and
the index lock is never held while waiting for a conversation lock, so the two kinds
cannot deadlock. A write unit keeps its conversations' locks until it ends; at commit
each conversation gets one journal line (all of the unit's changes, or none after a
crash) and then the index gets one. If a crash falls between the two, the index
disagrees with the files: opening the store notices (each index entry records the
files' size and identity) and rebuilds the entry from the files.

This module opens the store and keeps what threads share: the loaded conversations (an
LRU cache) and records, and the locks. Beside it: ``loaded`` (a conversation or the
records in memory), ``index`` (the index and the change feed), ``session`` (a unit of
work), ``records`` (a unit's records), ``search`` and ``query`` (searching and filtering
in Python), ``repair`` (integrity checks and repair), ``journal`` (snapshot + journal).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from convstore.backends.base import RepairReport
from convstore.backends.files.index import FilesIndex
from convstore.backends.files.journal import JournaledFile
from convstore.backends.files.loaded import (
    LoadedConversation,
    LoadedRecords,
    apply_entry,
    compaction_due,
    load_conversation,
    load_records,
)
from convstore.backends.files.repair import repair_store, store_problems
from convstore.backends.files.session import FilesSession
from convstore.config import ConversationManagerConfig
from convstore.errors import ConfigurationError
from convstore.ids import check_id
from convstore.locks import FileLock

_MIN_CACHED_STATES = 8


def parse_files_url(url: str) -> Path:
    """The directory of a ``file://PATH`` URL (``file:///abs`` or ``file://relative``)."""
    path = url.removeprefix("file://")
    if not url.startswith("file://") or not path:
        raise ConfigurationError(f"store URL {url!r} names no directory (use file://PATH)")
    return Path(path)


class FilesBackend:
    """Conversations as JSON files in a directory, shared safely by threads and processes."""

    def __init__(self, url: str, config: ConversationManagerConfig) -> None:
        self.url = url
        self.root = parse_files_url(url)
        self.lock_timeout = config.lock_timeout
        self.compress = config.enable_compression
        self._fsync = config.durability == "full"
        self.conversations_dir = self.root / "conversations"
        self.index_dir = self.root / "index"
        self.temp_dir = self.root / "temp"
        for directory in (self.conversations_dir, self.index_dir, self.root / "backups"):
            directory.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(exist_ok=True)
        self.index = FilesIndex(
            self,
            self._journaled(self.index_dir / "conversations.idx"),
            self.index_dir / "changes.log",
        )
        records_dir = self.root / "records"
        records_dir.mkdir(exist_ok=True)
        self.records_file = self._journaled(records_dir / "records.json")
        self._records: LoadedRecords | None = None
        self._states: OrderedDict[str, LoadedConversation] = OrderedDict()
        self._capacity = max(config.max_cache_size, _MIN_CACHED_STATES)
        self.guard = threading.RLock()  # in-process state; files have their own locks
        self.index.reconcile()

    # units of work ------------------------------------------------------------------

    def read(self) -> FilesSession:
        return FilesSession(self, write=False)

    def write(self) -> FilesSession:
        return FilesSession(self, write=True)

    def close(self) -> None:
        with self.guard:
            self._states.clear()
            self.index.forget()

    # files and locks ----------------------------------------------------------------

    def _journaled(self, snapshot: Path) -> JournaledFile:
        """A snapshot file and its journal beside it (the same name, ``.journal``)."""
        return JournaledFile(
            snapshot,
            snapshot.with_suffix(".journal"),
            self.temp_dir,
            fsync=self._fsync,
            root=self.root,
        )

    def conversation_file(self, conversation_id: str) -> JournaledFile:
        check_id(conversation_id, "conversation_id")  # never a path outside the store
        return self._journaled(self.conversations_dir / f"{conversation_id}.json")

    def conversation_lock(self, conversation_id: str, *, shared: bool) -> FileLock:
        check_id(conversation_id, "conversation_id")
        path = self.conversations_dir / f"{conversation_id}.lock"
        return FileLock(path, shared=shared, timeout=self.lock_timeout)

    def index_lock(self, *, shared: bool) -> FileLock:
        return FileLock(self.index_dir / "index.lock", shared=shared, timeout=self.lock_timeout)

    def records_lock(self, *, shared: bool) -> FileLock:
        path = self.records_file.snapshot.with_suffix(".lock")
        return FileLock(path, shared=shared, timeout=self.lock_timeout)

    # records (the caller holds the records lock) ---------------------------------------

    def records(self) -> LoadedRecords:
        """The records as their files say now."""
        with self.guard:
            if self._records is not None:
                newer = self.records_file.load_since(self._records.mark)
                if newer is not None:
                    for entry in newer.entries:
                        self._records.apply_entry(entry, self.records_file.journal)
                    self._records.mark = newer.mark
                    return self._records
            self._records = load_records(self.records_file.load(), self.records_file)
            return self._records

    def write_records(self, state: LoadedRecords, ops: list[dict[str, Any]]) -> None:
        """Journal a unit's record changes, already applied to ``state``."""
        with self.guard:
            state.applied += 1
            state.mark = self.records_file.append({"n": state.applied, "ops": ops}, state.mark)
            if compaction_due(self.records_file):
                state.mark = self.records_file.write_snapshot(state.document(), compress=False)

    def forget_records(self) -> None:
        with self.guard:
            self._records = None

    # conversation states (the caller holds the conversation's lock) --------------------

    def state(self, conversation_id: str) -> LoadedConversation | None:
        """The conversation as its files say now; None if it does not exist."""
        files = self.conversation_file(conversation_id)
        with self.guard:
            cached = self._states.get(conversation_id)
            if cached is not None:
                newer = files.load_since(cached.mark)
                if newer is not None:
                    if newer.entries:  # readers may still hold the older one: change a copy
                        cached = cached.fork()
                        for entry in newer.entries:
                            apply_entry(cached, entry, files)
                        self._states[conversation_id] = cached
                    cached.mark = newer.mark
                    self._states.move_to_end(conversation_id)
                    return cached
                self._states.pop(conversation_id)
            loaded = files.load()
            if loaded.snapshot is None:
                return None
            state = load_conversation(loaded, files)
            self._states[conversation_id] = state
            while len(self._states) > self._capacity:
                self._states.popitem(last=False)
            return state

    def forget(self, conversation_id: str) -> None:
        """Drop the cached state (after a rollback the files are the truth again)."""
        with self.guard:
            self._states.pop(conversation_id, None)

    def remember(self, conversation_id: str, state: LoadedConversation) -> None:
        with self.guard:
            self._states[conversation_id] = state

    def maybe_compact(self, state: LoadedConversation) -> None:
        """Fold the journal into a new snapshot once it outgrows the snapshot, so appends
        stay cheap and reading stays linear in the conversation's size."""
        files = self.conversation_file(state.conversation.id)
        if compaction_due(files):
            state.mark = files.write_snapshot(state.document(), compress=self.compress)

    def write_new(self, state: LoadedConversation) -> None:
        files = self.conversation_file(state.conversation.id)
        state.mark = files.write_snapshot(state.document(), compress=self.compress)

    # whole-store views --------------------------------------------------------------

    def disk_usage(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def repair(self) -> RepairReport:
        """Cut torn journal tails, set aside damaged conversation files (into
        ``temp/damaged``, never deleted), fix counters, and rebuild the index."""
        return repair_store(self)

    def integrity_problems(self) -> Iterator[str]:
        return store_problems(self)
