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
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from convstore.backends.base import RepairReport
from convstore.backends.files.journal import JournaledFile, Loaded, Mark
from convstore.backends.files.query import conversation_matches, message_matches
from convstore.config import ConversationManagerConfig
from convstore.errors import ConfigurationError, DataIntegrityError
from convstore.fileio import write_atomic
from convstore.ids import check_id, is_valid_id
from convstore.locks import FileLock
from convstore.models import Change, Chunk, Conversation, Message, MessageStatus, Role, Usage
from convstore.queries import (
    BranchPage,
    ConversationFilter,
    ConversationQuery,
    ConversationSearch,
    MessageFilter,
    MessageSearch,
    page_of,
)
from convstore.search.ranking import RANK_WINDOW, bm25
from convstore.search.text import index_text
from convstore.validation import dump_json, text_values

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MIN_COMPACT_BYTES = 64 * 1024
_MIN_CACHED_STATES = 8


def parse_files_url(url: str) -> Path:
    """The directory of a ``file://PATH`` URL (``file:///abs`` or ``file://relative``)."""
    path = url.removeprefix("file://")
    if not url.startswith("file://") or not path:
        raise ConfigurationError(f"store URL {url!r} names no directory (use file://PATH)")
    return Path(path)


# in-memory state ---------------------------------------------------------------------


@dataclass
class _ConversationState:
    """A conversation as its files say, up to ``mark``."""

    conversation: Conversation
    messages: dict[str, Message]
    applied: int
    mark: Mark
    embeddings: dict[str, dict[str, bytes]] = field(default_factory=dict)  # model -> id -> vector
    chunks: dict[str, list[Chunk]] = field(default_factory=dict)  # message id -> chunks by seq
    _ordered: list[Message] | None = None
    # the search index of this conversation: each message's terms, made when first needed
    _terms: dict[str, tuple[list[str], set[str]]] = field(default_factory=dict)

    def terms(self, message: Message) -> tuple[list[str], set[str]]:
        """The message's index terms and CJK single characters (kept until it changes)."""
        found = self._terms.get(message.id)
        if found is None:
            indexed = index_text(text_values(message.content))
            found = (indexed.terms.split(), set(indexed.singles.split()))
            self._terms[message.id] = found
        return found

    def ordered(self) -> list[Message]:
        """The messages by seq (kept until the next change)."""
        if self._ordered is None:
            self._ordered = sorted(self.messages.values(), key=lambda m: m.seq)
        return self._ordered

    def apply(self, op: Mapping[str, Any]) -> None:
        """Change the state as one journal operation says."""
        kind = op["op"]
        if kind not in ("chunks", "embed"):  # those leave the messages as they are
            self._ordered = None
        if kind == "update":
            self.conversation = self.conversation.model_copy(update=op["values"])
        elif kind == "messages":
            for record in op["records"]:
                message = _message_from_json(record)
                self.messages[message.id] = message
        elif kind == "edit":
            old = self.messages[op["id"]]
            self.messages[old.id] = old.model_copy(update=_message_fields(op["values"]))
            if "content" in op["values"]:  # the old vectors and terms describe the old text
                self._drop_vectors([old.id])
                self._terms.pop(old.id, None)
        elif kind == "delete":
            for message_id in op["ids"]:
                self.messages.pop(message_id, None)
                self._terms.pop(message_id, None)
                self.chunks.pop(message_id, None)
            self._drop_vectors(op["ids"])
        elif kind == "chunks":
            for record in op["records"]:
                chunk = Chunk.model_validate(record)
                self.chunks.setdefault(chunk.message_id, []).append(chunk)
        elif kind == "embed":
            vectors = self.embeddings.setdefault(op["model"], {})
            vectors.update((i, base64.b64decode(v)) for i, v in op["vectors"].items())
        elif kind == "reparent":
            for message in list(self.messages.values()):
                if message.parent_id == op["old"]:
                    self.messages[message.id] = message.model_copy(update={"parent_id": op["new"]})
        else:
            raise DataIntegrityError(f"unknown journal operation {kind!r}")

    def _drop_vectors(self, message_ids: Sequence[str]) -> None:
        for vectors in self.embeddings.values():
            for message_id in message_ids:
                vectors.pop(message_id, None)

    def document(self) -> dict[str, Any]:
        """The snapshot file's contents."""
        return {
            "format": "convstore.conversation",
            "version": FORMAT_VERSION,
            "applied": self.applied,
            "conversation": self.conversation.model_dump(mode="json"),
            "messages": [m.model_dump(mode="json") for m in self.ordered()],
            "embeddings": {
                model: {i: base64.b64encode(v).decode() for i, v in vectors.items()}
                for model, vectors in self.embeddings.items()
            },
            "chunks": [c.model_dump() for chunks in self.chunks.values() for c in chunks],
        }


@dataclass
class _IndexState:
    """The index: conversations' fields, their files' identity, and message ids."""

    conversations: dict[str, Conversation] = field(default_factory=dict)
    files: dict[str, list[Any]] = field(default_factory=dict)
    message_ids: dict[str, str] = field(default_factory=dict)
    last_change: int = 0
    applied: int = 0
    mark: Mark = field(default_factory=lambda: Mark(None, None, 0))

    def apply(self, entry: Mapping[str, Any]) -> None:
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


@dataclass
class _RecordsState:
    """The records as their files say, up to ``mark``: (namespace, key) -> value, expiry."""

    items: dict[tuple[str, str], tuple[dict[str, Any], float | None]] = field(default_factory=dict)
    applied: int = 0
    mark: Mark = field(default_factory=lambda: Mark(None, None, 0))

    def apply(self, op: Mapping[str, Any]) -> None:
        key = (op["namespace"], op["key"])
        if op["op"] == "put":
            self.items[key] = (op["value"], op["expires_at"])
        else:
            self.items.pop(key, None)

    def document(self) -> dict[str, Any]:
        return {
            "format": "convstore.records",
            "version": FORMAT_VERSION,
            "applied": self.applied,
            "records": [
                {"op": "put", "namespace": ns, "key": key, "value": value, "expires_at": expiry}
                for (ns, key), (value, expiry) in sorted(self.items.items())
            ],
        }


# the backend ---------------------------------------------------------------------------


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
        self.index_file = JournaledFile(
            self.index_dir / "conversations.idx",
            self.index_dir / "conversations.journal",
            self.temp_dir,
            fsync=self._fsync,
            root=self.root,
        )
        self.changes_file = self.index_dir / "changes.log"
        records_dir = self.root / "records"
        records_dir.mkdir(exist_ok=True)
        self.records_file = JournaledFile(
            records_dir / "records.json",
            records_dir / "records.journal",
            self.temp_dir,
            fsync=self._fsync,
            root=self.root,
        )
        self._records: _RecordsState | None = None
        self._states: OrderedDict[str, _ConversationState] = OrderedDict()
        self._capacity = max(config.max_cache_size, _MIN_CACHED_STATES)
        self._index: _IndexState | None = None
        self.guard = threading.RLock()  # in-process state; files have their own locks
        self.reconcile()

    # units of work ------------------------------------------------------------------

    def read(self) -> FilesSession:
        return FilesSession(self, write=False)

    def write(self) -> FilesSession:
        return FilesSession(self, write=True)

    def close(self) -> None:
        with self.guard:
            self._states.clear()
            self._index = None

    # files and locks ----------------------------------------------------------------

    def conversation_file(self, conversation_id: str) -> JournaledFile:
        check_id(conversation_id, "conversation_id")  # never a path outside the store
        base = self.conversations_dir / conversation_id
        return JournaledFile(
            base.with_suffix(".json"),
            base.with_suffix(".journal"),
            self.temp_dir,
            fsync=self._fsync,
            root=self.root,
        )

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

    def records(self) -> _RecordsState:
        """The records as their files say now."""
        with self.guard:
            if self._records is not None:
                newer = self.records_file.load_since(self._records.mark)
                if newer is not None:
                    for entry in newer.entries:
                        self._apply_records(self._records, entry)
                    self._records.mark = newer.mark
                    return self._records
            loaded = self.records_file.load()
            state = _RecordsState()
            if loaded.snapshot is not None:
                _check_format(loaded.snapshot, "convstore.records", self.records_file.snapshot)
                self._apply_records(
                    state, {"n": loaded.snapshot["applied"], "ops": loaded.snapshot["records"]}
                )
            for entry in loaded.entries:
                self._apply_records(state, entry)
            state.mark = loaded.mark
            self._records = state
            return state

    def _apply_records(self, state: _RecordsState, entry: Mapping[str, Any]) -> None:
        try:
            for op in entry["ops"]:
                state.apply(op)
        except (KeyError, TypeError) as exc:
            raise DataIntegrityError(f"{self.records_file.journal} holds a bad entry") from exc
        state.applied = entry["n"]

    def write_records(self, state: _RecordsState, ops: list[dict[str, Any]]) -> None:
        """Journal a unit's record changes, already applied to ``state``."""
        with self.guard:
            state.applied += 1
            state.mark = self.records_file.append({"n": state.applied, "ops": ops}, state.mark)
            snapshot_size, journal_size = self.records_file.sizes()
            if journal_size > max(snapshot_size, _MIN_COMPACT_BYTES):
                state.mark = self.records_file.write_snapshot(state.document(), compress=False)

    def forget_records(self) -> None:
        with self.guard:
            self._records = None

    # conversation states (the caller holds the conversation's lock) --------------------

    def state(self, conversation_id: str) -> _ConversationState | None:
        """The conversation as its files say now; None if it does not exist."""
        files = self.conversation_file(conversation_id)
        with self.guard:
            cached = self._states.get(conversation_id)
            if cached is not None:
                newer = files.load_since(cached.mark)
                if newer is not None:
                    for entry in newer.entries:
                        _apply_entry(cached, entry, files)
                    cached.mark = newer.mark
                    self._states.move_to_end(conversation_id)
                    return cached
                self._states.pop(conversation_id)
            loaded = files.load()
            if loaded.snapshot is None:
                return None
            state = _state_from(loaded, files)
            self._states[conversation_id] = state
            while len(self._states) > self._capacity:
                self._states.popitem(last=False)
            return state

    def forget(self, conversation_id: str) -> None:
        """Drop the cached state (after a rollback the files are the truth again)."""
        with self.guard:
            self._states.pop(conversation_id, None)

    def remember(self, conversation_id: str, state: _ConversationState) -> None:
        with self.guard:
            self._states[conversation_id] = state

    # the index (the caller holds the index lock) ---------------------------------------

    def index(self) -> _IndexState:
        """The index as its files say now."""
        with self.guard:
            if self._index is not None:
                newer = self.index_file.load_since(self._index.mark)
                if newer is not None:
                    for entry in newer.entries:
                        self._index.apply(entry)
                    self._index.mark = newer.mark
                    return self._index
            loaded = self.index_file.load()
            index = _IndexState()
            if loaded.snapshot is not None:
                _check_format(loaded.snapshot, "convstore.index", self.index_file.snapshot)
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
            self._index = index
            return index

    def update_index(self, entry: dict[str, Any], changes: list[dict[str, Any]]) -> None:
        """Append one entry (and the change feed lines) to the index; the caller holds the
        index lock exclusively."""
        with self.guard:
            index = self.index()
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
            index.mark = self.index_file.append(entry, index.mark)
            index.apply(entry)
            snapshot_size, journal_size = self.index_file.sizes()
            if journal_size > max(snapshot_size, _MIN_COMPACT_BYTES):
                index.mark = self.index_file.write_snapshot(index.document(), compress=False)

    def files_key(self, conversation_id: str) -> list[Any]:
        """What the index records of a conversation's files, to notice later changes."""
        files = self.conversation_file(conversation_id)
        snapshot = files.snapshot.stat()
        return [snapshot.st_ino, snapshot.st_size, snapshot.st_mtime_ns, files.sizes()[1]]

    def drop_changes(self, conversation_id: str) -> None:
        """Remove a deleted conversation's lines from the change feed (index lock held)."""
        if not self.changes_file.exists():
            return
        kept = [
            line
            for line in self.changes_file.read_text(encoding="utf-8").splitlines(keepends=True)
            if json.loads(line).get("conversation_id") != conversation_id
        ]
        write_atomic(self.changes_file, "".join(kept).encode("utf-8"), self.temp_dir)

    # consistency --------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring the index in line with the conversation files (after a crash, or when
        the index is missing), without holding the index lock while waiting for others."""
        with self.index_lock(shared=True):
            index = self.index()
            recorded = dict(index.files)
        on_disk = {
            path.stem for path in self.conversations_dir.glob("*.json") if is_valid_id(path.stem)
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
        if not self.index_file.exists():
            with self.index_lock(shared=False), self.guard:
                if not self.index_file.exists():
                    index = self.index()
                    index.mark = self.index_file.write_snapshot(index.document(), compress=False)

    def _files_key_or_none(self, conversation_id: str) -> list[Any] | None:
        try:
            return self.files_key(conversation_id)
        except (FileNotFoundError, DataIntegrityError):  # reindexing will say what is wrong
            return None

    def _reindex(self, conversation_id: str) -> None:
        with self.conversation_lock(conversation_id, shared=False):
            state = self.state(conversation_id)
            with self.index_lock(shared=False):
                if state is None:
                    entry: dict[str, Any] = {"drop": [conversation_id], "unids": []}
                    entry["unids"] = [
                        mid
                        for mid, cid in self.index().message_ids.items()
                        if cid == conversation_id
                    ]
                else:
                    entry = {
                        "set": {conversation_id: self.index_item(state)},
                        "ids": dict.fromkeys(state.messages, conversation_id),
                    }
                log.info("reindexed conversation %s from its files", conversation_id)
                self.update_index(entry, [])

    def index_item(self, state: _ConversationState) -> dict[str, Any]:
        return {
            "record": state.conversation.model_dump(mode="json"),
            "files": self.files_key(state.conversation.id),
        }

    def maybe_compact(self, state: _ConversationState) -> None:
        """Fold the journal into a new snapshot once it outgrows the snapshot, so appends
        stay cheap and reading stays linear in the conversation's size."""
        files = self.conversation_file(state.conversation.id)
        snapshot_size, journal_size = files.sizes()
        if journal_size > max(snapshot_size, _MIN_COMPACT_BYTES):
            state.mark = files.write_snapshot(state.document(), compress=self.compress)

    def write_new(self, state: _ConversationState) -> None:
        files = self.conversation_file(state.conversation.id)
        state.mark = files.write_snapshot(state.document(), compress=self.compress)

    # repair ---------------------------------------------------------------------------

    def repair(self) -> RepairReport:
        """Cut torn journal tails, set aside damaged conversation files (into
        ``temp/damaged``, never deleted), fix counters, and rebuild the index."""
        report = RepairReport()
        for path in sorted(self.conversations_dir.glob("*.json")):
            if is_valid_id(path.stem):
                self._repair_conversation(path.stem, report)
        with self.index_lock(shared=False), self.guard:
            for stale in (self.index_file.snapshot, self.index_file.journal):
                stale.unlink(missing_ok=True)
            self._index = None
        self.reconcile()
        report.actions.append("rebuilt the index from the conversation files")
        return report

    def _repair_conversation(self, conversation_id: str, report: RepairReport) -> None:
        files = self.conversation_file(conversation_id)
        with self.conversation_lock(conversation_id, shared=False):
            self.forget(conversation_id)
            try:
                state = self.state(conversation_id)
            except DataIntegrityError as exc:
                report.actions.append(f"set aside {self._quarantine(files)} ({exc})")
                report.set_aside.append(conversation_id)
                return
            cut = files.cut_torn_tail()
            if cut:
                report.actions.append(f"cut a torn {cut}-byte tail off {files.journal}")
            if state is not None and list(_state_problems(state, files.snapshot)):
                state.conversation = _recounted(state)
                state.mark = files.write_snapshot(state.document(), compress=self.compress)
                report.actions.append(f"recounted the messages of {files.snapshot}")

    def _quarantine(self, files: JournaledFile) -> Path:
        damaged = self.temp_dir / "damaged" / time.strftime("%Y%m%dT%H%M%S")
        damaged.mkdir(parents=True, exist_ok=True)
        for path in (files.snapshot, files.journal):
            if path.exists():
                path.replace(damaged / path.name)
        self.forget(files.snapshot.stem)
        return damaged / files.snapshot.name

    # whole-store views --------------------------------------------------------------

    def disk_usage(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def integrity_problems(self) -> Iterator[str]:
        with self.index_lock(shared=True):
            index = self.index()
            indexed = dict(index.conversations)
        seen = set()
        for path in sorted(self.conversations_dir.glob("*.json")):
            if not is_valid_id(path.stem):
                yield f"{path}: not a conversation file name"
                continue
            seen.add(path.stem)
            try:
                with self.conversation_lock(path.stem, shared=True):
                    state = self.state(path.stem)
            except DataIntegrityError as exc:
                yield str(exc)
                continue
            if state is None:
                continue
            yield from _state_problems(state, path)
            entry = indexed.get(path.stem)
            if entry is None or entry.version != state.conversation.version:
                yield f"{self.index_file.snapshot}: disagrees with {path}"
        for missing in sorted(set(indexed) - seen):
            yield f"{self.index_file.snapshot}: lists {missing}, which has no file"


# the session ---------------------------------------------------------------------------


class FilesSession:
    """One unit of work: conversation locks as they are touched, changes kept in memory
    and written at the end (one journal line per conversation, then the index)."""

    def __init__(self, backend: FilesBackend, *, write: bool) -> None:
        self._backend = backend
        self._write = write
        self._locks: dict[str, FileLock] = {}
        self._states: dict[str, _ConversationState | None] = {}
        self._ops: dict[str, list[dict[str, Any]]] = {}
        self._created: set[str] = set()
        self._deleted: set[str] = set()
        self._new_ids: dict[str, str] = {}
        self._gone_ids: list[str] = []
        self._changes: list[dict[str, Any]] = []
        self._records: _RecordsState | None = None  # held (and locked) once touched
        self._records_lock: FileLock | None = None
        self._record_ops: list[dict[str, Any]] = []

    def __enter__(self) -> FilesSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and self._write:
                self._commit()
            elif self._write:
                self._forget_all()
        except BaseException:
            self._forget_all()
            raise
        finally:
            for lock in self._locks.values():
                lock.release()
            if self._records_lock is not None:
                self._records_lock.release()

    def _forget_all(self) -> None:
        """After a rollback the files are the truth again."""
        for conversation_id in self._states:
            self._backend.forget(conversation_id)
        if self._record_ops:
            self._backend.forget_records()

    # reading ------------------------------------------------------------------------

    def _state(self, conversation_id: str) -> _ConversationState | None:
        if conversation_id in self._states:
            return self._states[conversation_id]
        if self._write:  # held until the unit ends
            lock = self._backend.conversation_lock(conversation_id, shared=False)
            lock.acquire()
            self._locks[conversation_id] = lock
            state = self._backend.state(conversation_id)
        else:
            with self._backend.conversation_lock(conversation_id, shared=True):
                state = self._backend.state(conversation_id)
        self._states[conversation_id] = state
        return state

    def _peek(self, conversation_id: str) -> _ConversationState | None:
        """A conversation this unit does not hold, read under a brief shared lock."""
        if conversation_id in self._states:
            return self._states[conversation_id]
        with self._backend.conversation_lock(conversation_id, shared=True):
            return self._backend.state(conversation_id)

    def _index(self) -> _IndexState:
        with self._backend.index_lock(shared=True):
            return self._backend.index()

    def _existing(self, conversation_id: str) -> _ConversationState:
        state = self._state(conversation_id)
        if state is None:
            raise DataIntegrityError(f"conversation {conversation_id} vanished during a write")
        return state

    def _record(self, conversation_id: str, op: dict[str, Any]) -> None:
        """Apply ``op`` to the unit's view now and journal it at commit."""
        self._existing(conversation_id).apply(op)
        if conversation_id not in self._created:
            self._ops.setdefault(conversation_id, []).append(op)

    # conversations ------------------------------------------------------------------

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        state = self._state(conversation_id)
        return None if state is None else state.conversation

    def get_stamp(self, conversation_id: str) -> tuple[float, int] | None:
        state = self._state(conversation_id)
        return (
            None if state is None else (state.conversation.created_at, state.conversation.version)
        )

    def insert_conversation(self, conversation: Conversation) -> None:
        conversation_id = conversation.id
        if self._state(conversation_id) is not None:
            raise DataIntegrityError(f"conversation {conversation_id} already exists")
        state = _ConversationState(conversation, {}, 0, Mark(None, None, 0))
        self._states[conversation_id] = state
        self._created.add(conversation_id)
        self._deleted.discard(conversation_id)
        self._ops.pop(conversation_id, None)

    def update_conversation(self, conversation_id: str, values: Mapping[str, Any]) -> None:
        self._record(conversation_id, {"op": "update", "values": dict(values)})

    def delete_conversation(self, conversation_id: str) -> None:
        state = self._existing(conversation_id)
        self._deleted.add(conversation_id)
        self._gone_ids.extend(state.messages)
        self._states[conversation_id] = None
        self._created.discard(conversation_id)
        self._ops.pop(conversation_id, None)

    def list_conversations(self, query: ConversationQuery) -> list[Conversation]:
        found = [
            c for c in self._index().conversations.values() if conversation_matches(c, query.where)
        ]
        found.sort(key=lambda c: (getattr(c, query.order_by), c.id), reverse=query.descending)
        end = None if query.limit is None else query.offset + query.limit
        return found[query.offset : end]

    def count_conversations(self, where: ConversationFilter) -> int:
        return sum(
            1 for c in self._index().conversations.values() if conversation_matches(c, where)
        )

    def count_messages(self) -> int:
        return sum(c.message_count for c in self._index().conversations.values())

    # messages -----------------------------------------------------------------------

    def insert_messages(self, messages: Sequence[Message]) -> None:
        conversation_id = messages[0].conversation_id
        records = [m.model_dump(mode="json") for m in messages]
        self._record(conversation_id, {"op": "messages", "records": records})
        self._new_ids.update(dict.fromkeys((m.id for m in messages), conversation_id))

    def find_message(self, message_id: str) -> Message | None:
        for state in self._states.values():
            if state is not None and message_id in state.messages:
                return state.messages[message_id]
        owner = self._new_ids.get(message_id) or self._index().message_ids.get(message_id)
        if owner is None or owner in self._deleted:
            return None
        state = self._peek(owner)
        return None if state is None else state.messages.get(message_id)

    def get_messages_by_id(self, conversation_id: str, message_ids: Sequence[str]) -> list[Message]:
        state = self._state(conversation_id)
        if state is None:
            return []
        found = [state.messages[i] for i in set(message_ids) if i in state.messages]
        return sorted(found, key=lambda m: m.seq)

    def get_branch(self, conversation_id: str, page: BranchPage) -> list[Message]:
        state = self._state(conversation_id)
        return [] if state is None else page_of(state.ordered(), page)

    def get_all_messages(self, conversation_id: str) -> list[Message]:
        state = self._state(conversation_id)
        return [] if state is None else list(state.ordered())

    def update_message(self, message_id: str, values: Mapping[str, Any]) -> None:
        owner = self.find_message(message_id)
        if owner is not None:
            op = {"op": "edit", "id": message_id, "values": _json_values(values)}
            self._record(owner.conversation_id, op)

    def delete_messages(self, conversation_id: str, message_ids: Sequence[str]) -> None:
        self._record(conversation_id, {"op": "delete", "ids": list(message_ids)})
        self._gone_ids.extend(message_ids)

    def reparent_messages(
        self, conversation_id: str, old_parent_id: str, new_parent_id: str | None
    ) -> None:
        self._record(
            conversation_id, {"op": "reparent", "old": old_parent_id, "new": new_parent_id}
        )

    def rank_messages(self, search: MessageSearch) -> list[tuple[Message, float]]:
        found: list[Message] = []
        documents: list[list[str]] = []
        for state in self._states_in(search.where):
            for message in state.ordered():
                terms, singles = state.terms(message)
                if message_matches(message, search.where) and search.query.matches_terms(
                    terms, singles
                ):
                    found.append(message)
                    documents.append(terms)
        if len(found) > RANK_WINDOW:  # only the newest matches are ranked, as in SQL
            newest = sorted(range(len(found)), key=lambda i: (found[i].created_at, found[i].id))
            kept = sorted(newest[-RANK_WINDOW:])
            found, documents = [found[i] for i in kept], [documents[i] for i in kept]
        return _best(list(zip(found, bm25(documents, search.query), strict=True)), search)

    def rank_conversations(self, search: ConversationSearch) -> list[tuple[Conversation, float]]:
        best: dict[str, float] = {}
        listed = [
            c for c in self._index().conversations.values() if conversation_matches(c, search.where)
        ]
        named = [c for c in listed if search.query.matches([c.name, c.description or ""])]
        names = bm25([index_text([c.name]).terms.split() for c in named], search.query)
        descriptions = bm25(
            [index_text([c.description or ""]).terms.split() for c in named], search.query
        )
        for conversation, name, description in zip(named, names, descriptions, strict=True):
            best[conversation.id] = _NAME_WEIGHT * name + _DESCRIPTION_WEIGHT * description
        if search.in_messages:
            ids = tuple(c.id for c in listed)
            in_messages = MessageSearch(search.query, MessageFilter(conversation_ids=ids))
            for message, score in self.rank_messages(in_messages):
                best[message.conversation_id] = max(best.get(message.conversation_id, 0), score)
        by_id = {c.id: c for c in listed}
        return _best([(by_id[cid], score) for cid, score in best.items()], search)

    def words_containing(self, fragment: str, limit: int) -> list[str]:
        words: set[str] = set()
        for state in self._states_in(MessageFilter()):
            for message in state.ordered():
                words.update(t for t in state.terms(message)[0] if fragment in t)
        for conversation in self._index().conversations.values():
            texts = [conversation.name, conversation.description or ""]
            words.update(t for t in index_text(texts).terms.split() if fragment in t)
        return sorted(words, key=lambda word: (len(word), word))[:limit]

    # embeddings ---------------------------------------------------------------------

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> None:
        by_conversation: dict[str, dict[str, str]] = {}
        for message_id, vector in vectors.items():
            message = self.find_message(message_id)
            if message is not None:
                encoded = base64.b64encode(vector).decode()
                by_conversation.setdefault(message.conversation_id, {})[message_id] = encoded
        for conversation_id, encoded_vectors in by_conversation.items():
            op = {"op": "embed", "model": model, "vectors": encoded_vectors}
            self._record(conversation_id, op)

    def get_embeddings(
        self, model: str, where: MessageFilter, message_ids: Sequence[str] | None = None
    ) -> list[tuple[str, bytes]]:
        wanted = None if message_ids is None else set(message_ids)
        found: list[tuple[str, bytes]] = []
        for state in self._states_in(where):
            vectors = state.embeddings.get(model, {})
            found.extend(
                (m.id, vectors[m.id])
                for m in state.ordered()
                if m.id in vectors
                and (wanted is None or m.id in wanted)
                and message_matches(m, where)
            )
        return found

    def changes_since(self, mark: int, limit: int) -> list[Change]:
        with self._backend.index_lock(shared=True):
            if not self._backend.changes_file.exists():
                return []
            lines = self._backend.changes_file.read_text(encoding="utf-8").splitlines()
        entries = (json.loads(line) for line in lines if line)
        newer = [
            Change(e["id"], e["conversation_id"], e["kind"], e["payload"])
            for e in entries
            if e["id"] > mark
        ]
        return newer[:limit]

    def nearest_embeddings(
        self, model: str, where: MessageFilter, vector: bytes, k: int
    ) -> list[tuple[str, float]] | None:
        return None  # no index of its own: the store's exact search serves

    def messages_without_embeddings(self, model: str, limit: int) -> list[Message]:
        missing: list[Message] = []
        for state in self._states_in(MessageFilter()):
            vectors = state.embeddings.get(model, {})
            missing.extend(m for m in state.ordered() if m.id not in vectors)
            if len(missing) >= limit:
                break
        return missing[:limit]

    def change_mark(self) -> int:
        return self._index().last_change

    def _states_in(self, where: MessageFilter) -> Iterator[_ConversationState]:
        """The states of the conversations the filter's messages may be in, read briefly."""
        scope = where.conversation_ids
        if where.owner_id is not None:
            index = self._index().conversations
            scope = tuple(
                cid
                for cid in (index if scope is None else scope)
                if cid in index and index[cid].owner_id == where.owner_id
            )
        for conversation_id in sorted(self._index().conversations if scope is None else scope):
            state = self._peek(conversation_id)
            if state is not None:
                yield state

    # streamed replies ---------------------------------------------------------------

    def insert_chunks(self, conversation_id: str, chunks: Sequence[Chunk]) -> None:
        self._record(conversation_id, {"op": "chunks", "records": [c.model_dump() for c in chunks]})

    def get_chunks(
        self, conversation_id: str, message_id: str, after: int, limit: int | None
    ) -> list[Chunk]:
        state = self._state(conversation_id)
        chunks = [] if state is None else state.chunks.get(message_id, [])
        newer = [c for c in chunks if c.seq > after]
        return newer if limit is None else newer[:limit]

    def last_chunk_seq(self, conversation_id: str, message_id: str) -> int:
        state = self._state(conversation_id)
        chunks = None if state is None else state.chunks.get(message_id)
        return chunks[-1].seq if chunks else 0

    def streaming_messages(self) -> list[tuple[Message, float]]:
        found = []
        for state in self._states_in(MessageFilter()):
            for message in state.messages.values():
                if message.status is MessageStatus.STREAMING:
                    chunks = state.chunks.get(message.id)
                    found.append((message, chunks[-1].created_at if chunks else message.created_at))
        return found

    # records ------------------------------------------------------------------------

    def _held_records(self) -> _RecordsState:
        """The records: locked until the unit ends when writing, briefly when reading."""
        if self._records is not None:
            return self._records
        if not self._write:
            with self._backend.records_lock(shared=True):
                return self._backend.records()
        self._records_lock = self._backend.records_lock(shared=False)
        self._records_lock.acquire()
        self._records = self._backend.records()
        return self._records

    def get_record(self, namespace: str, key: str) -> tuple[dict[str, Any], float | None] | None:
        return self._held_records().items.get((namespace, key))

    def insert_record(
        self, namespace: str, key: str, value: Mapping[str, Any], expires_at: float | None
    ) -> None:
        op = {
            "op": "put",
            "namespace": namespace,
            "key": key,
            "value": dict(value),
            "expires_at": expires_at,
        }
        self._held_records().apply(op)
        self._record_ops.append(op)

    def delete_record(self, namespace: str, key: str) -> bool:
        records = self._held_records()
        if (namespace, key) not in records.items:
            return False
        op = {"op": "delete", "namespace": namespace, "key": key}
        records.apply(op)
        self._record_ops.append(op)
        return True

    def list_records(
        self, namespace: str | None
    ) -> list[tuple[str, str, dict[str, Any], float | None]]:
        items = sorted(self._held_records().items.items())
        return [(ns, k, v, e) for (ns, k), (v, e) in items if namespace in (None, ns)]

    # change feed --------------------------------------------------------------------

    def record_change(self, conversation_id: str, kind: str, payload: Mapping[str, Any]) -> None:
        self._changes.append(
            {
                "conversation_id": conversation_id,
                "kind": kind,
                "payload": dict(payload),
                "created_at": time.time(),
            }
        )

    # commit -------------------------------------------------------------------------

    def _commit(self) -> None:
        backend = self._backend
        if self._records is not None and self._record_ops:
            backend.write_records(self._records, self._record_ops)
        entry: dict[str, Any] = {"set": {}, "drop": [], "ids": {}, "unids": []}
        for conversation_id, state in self._states.items():
            if conversation_id in self._deleted:
                backend.conversation_file(conversation_id).remove()
                backend.forget(conversation_id)
                entry["drop"].append(conversation_id)
                continue
            if state is None:
                continue
            if conversation_id in self._created:
                backend.write_new(state)
            elif self._ops.get(conversation_id):
                files = backend.conversation_file(conversation_id)
                line = {"n": state.applied + 1, "ops": self._ops[conversation_id]}
                state.mark = files.append(line, state.mark)
                state.applied += 1
                backend.maybe_compact(state)
            else:
                continue
            backend.remember(conversation_id, state)
            entry["set"][conversation_id] = backend.index_item(state)
        entry["ids"] = {m: c for m, c in self._new_ids.items() if c not in self._deleted}
        entry["unids"] = [m for m in self._gone_ids if m not in entry["ids"]]
        if not (entry["set"] or entry["drop"] or self._changes):
            return
        with backend.index_lock(shared=False):
            for conversation_id in entry["drop"]:
                backend.drop_changes(conversation_id)
            changes = [c for c in self._changes if c["conversation_id"] not in self._deleted]
            backend.update_index(entry, changes)


# what a match in a name or a description counts, against 1 for a match in a message
# (the weights the SQL backends give bm25)
_NAME_WEIGHT = 4.0
_DESCRIPTION_WEIGHT = 2.0


def _best(
    scored: list[tuple[Any, float]], search: MessageSearch | ConversationSearch
) -> list[tuple[Any, float]]:
    """The requested page of ``scored``, best first (ties by id, as the SQL backends)."""
    scored.sort(key=lambda pair: (-pair[1], pair[0].id))
    end = None if search.limit is None else search.offset + search.limit
    return scored[search.offset : end]


# records <-> JSON ------------------------------------------------------------------------


def _state_from(loaded: Loaded, files: JournaledFile) -> _ConversationState:
    document = loaded.snapshot
    assert document is not None
    _check_format(document, "convstore.conversation", files.snapshot)
    try:
        state = _ConversationState(
            Conversation.model_validate(document["conversation"]),
            {m["id"]: _message_from_json(m) for m in document["messages"]},
            int(document["applied"]),
            loaded.mark,
            {
                model: {i: base64.b64decode(v) for i, v in vectors.items()}
                for model, vectors in document.get("embeddings", {}).items()
            },
        )
        state.apply({"op": "chunks", "records": document.get("chunks", [])})
    except (KeyError, TypeError, ValueError) as exc:
        raise DataIntegrityError(f"{files.snapshot} is damaged: {exc}") from exc
    for entry in loaded.entries:
        _apply_entry(state, entry, files)
    return state


def _apply_entry(state: _ConversationState, entry: Mapping[str, Any], files: JournaledFile) -> None:
    try:
        for op in entry["ops"]:
            state.apply(op)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataIntegrityError(f"{files.journal} holds a bad entry: {exc!r}") from exc
    state.applied = entry["n"]


def _check_format(document: Mapping[str, Any], kind: str, path: Path) -> None:
    if document.get("format") != kind:
        raise DataIntegrityError(f"{path} is not a {kind} file")
    if document.get("version") != FORMAT_VERSION:
        raise DataIntegrityError(
            f"{path} has format version {document.get('version')!r}; this convstore reads "
            f"version {FORMAT_VERSION}"
        )


def _message_from_json(record: Mapping[str, Any]) -> Message:
    return Message.model_validate(record)


def _message_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Journal values of a message edit, as the model's types."""
    converted = dict(values)
    if "role" in converted:
        converted["role"] = Role(converted["role"])
    if "status" in converted:
        converted["status"] = MessageStatus(converted["status"])
    if converted.get("usage") is not None:
        converted["usage"] = Usage.model_validate(converted["usage"])
    return converted


def _json_values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.model_dump(mode="json") if isinstance(v, Usage) else v) for k, v in values.items()
    }


def _recounted(state: _ConversationState) -> Conversation:
    """The conversation with counters that agree with its messages."""
    ordered = state.ordered()
    head = state.conversation.head_message_id
    return state.conversation.model_copy(
        update={
            "message_count": len(ordered),
            "last_seq": max([state.conversation.last_seq, *(m.seq for m in ordered)]),
            "head_message_id": head
            if head in state.messages
            else (ordered[-1].id if ordered else None),
        }
    )


def _state_problems(state: _ConversationState, path: Path) -> Iterator[str]:
    conversation, messages = state.conversation, state.messages
    if conversation.message_count != len(messages):
        yield f"{path}: message_count {conversation.message_count} but {len(messages)} messages"
    if messages and max(m.seq for m in messages.values()) > conversation.last_seq:
        yield f"{path}: last_seq {conversation.last_seq} below a stored seq"
    if conversation.head_message_id is not None and conversation.head_message_id not in messages:
        yield f"{path}: head message {conversation.head_message_id} is missing"
    if len({m.seq for m in messages.values()}) != len(messages):
        yield f"{path}: seq values repeat"
