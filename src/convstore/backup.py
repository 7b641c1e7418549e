"""Backups of a store: full, incremental and single-conversation, restore and retention.

Each backup is a directory ``{backup_id}/`` under the backup directory holding an
archive (``archive.jsonl`` or, with ``enable_compression``, ``archive.jsonl.gz``; see
:mod:`convstore.archive`) and ``manifest.json``. A backup is written into a hidden
temporary directory and renamed into place once whole, so a crash never leaves a
backup that looks complete. Backup ids are UTC timestamps (``20261125T013455.123456Z``)
and sort in the order the backups were made.

A full backup holds every conversation; an incremental one holds the conversations
whose version changed since the backup it builds on (``since``) and those deleted
since. A full backup and the incrementals built on it form a chain; restoring a backup
replays its chain.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from convstore.archive import (
    ArchiveKind,
    ArchiveReader,
    ArchiveWriter,
    ConversationEntry,
    DeletedEntry,
    Entry,
    Header,
    Progress,
    exported,
    iter_conversations,
    redact_url,
    verify_archive,
)
from convstore.errors import (
    ConfigurationError,
    ConversationNotFoundError,
    DataIntegrityError,
    InvalidInputError,
)
from convstore.fileio import fsync_directory, no_links
from convstore.ids import check_id
from convstore.locks import FileLock
from convstore.store import ConversationStore

log = logging.getLogger("convstore.backup")

MANIFEST = "manifest.json"
ARCHIVE_NAMES = ("archive.jsonl", "archive.jsonl.gz")
BACKUP_ID = re.compile(r"\d{8}T\d{6}\.\d{6}Z(?:-\d{3})?")
_TEMP_PREFIX = ".tmp-"
_LOCK_FILE = ".lock"


def default_backup_dir(store_url: str, storage_path: str | None) -> Path | None:
    """Where a store's backups go by default: ``PATH/backups`` for ``file://PATH``,
    ``DIR/backups`` for ``sqlite:///DIR/name.db``; None for a store in memory."""
    if storage_path is not None:
        return Path(storage_path) / "backups"
    if store_url.startswith("file://") and store_url != "file://":
        return Path(store_url.removeprefix("file://")) / "backups"
    database = store_url.removeprefix("sqlite:///")
    if store_url.startswith("sqlite:///") and database not in ("", ":memory:"):
        return Path(database).parent / "backups"
    return None


def backup_dir_of(store: ConversationStore) -> Path | None:
    """The store's backup directory: ``backup_dir`` if configured, else the default."""
    if store.config.backup_dir is not None:
        return Path(store.config.backup_dir)
    return default_backup_dir(store.url, store.config.storage_path)


def backups_for(store: ConversationStore, directory: str | Path | None = None) -> BackupManager:
    """The BackupManager of ``store``, in ``directory`` or the store's backup directory."""
    chosen = directory if directory is not None else backup_dir_of(store)
    if chosen is None:
        raise ConfigurationError(
            f"the store {store.url} has no backup directory: "
            "give one (backup_dir, or --dir on the command line)"
        )
    return BackupManager(store, chosen)


def check_backup_id(value: object) -> str:
    """``value`` if it is a backup id (it names a directory, so nothing else is let in)."""
    if not isinstance(value, str) or not BACKUP_ID.fullmatch(value):
        raise InvalidInputError(
            f"backup id {value!r} is invalid: expected a UTC timestamp like 20260101T000000.000000Z"
        )
    return value


class Manifest(BaseModel):
    """What a backup holds: ``conversations`` maps each archived conversation to its
    version, ``deleted`` lists the conversations an incremental backup records as gone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backup_id: str
    kind: ArchiveKind
    created_at: float
    conversations: dict[str, int]
    deleted: list[str] = []
    since: str | None = None
    conversation_id: str | None = None
    counts: dict[str, int]


@dataclass(frozen=True)
class RestoreSummary:
    """What a restore did."""

    restored: int
    deleted: int


@dataclass(frozen=True)
class _Changes:
    """What an incremental backup on top of ``since`` must hold."""

    since: str
    changed: list[str]
    deleted: list[str]


class BackupManager:
    """Backups of ``store`` kept in ``directory``; safe to use from several processes.

    Making, pruning and restoring backups hold a lock file in the directory, so two
    processes never prune a chain the other is extending or restoring.
    """

    def __init__(self, store: ConversationStore, directory: str | Path) -> None:
        self.store = store
        self.directory = Path(directory)

    # making backups -------------------------------------------------------------------

    def backup_conversation(self, conversation_id: str) -> str:
        """Back up one conversation; its backup id. Raises ConversationNotFoundError."""
        record = self.store.export_conversation(conversation_id)
        if record is None:
            raise ConversationNotFoundError(conversation_id)
        with self._exclusive():
            return self._write("conversation", None, [ConversationEntry(*record)], conversation_id)

    def full_backup(self, on_progress: Progress | None = None) -> str:
        """Back up every conversation; the backup id."""
        with self._exclusive():
            return self._full(on_progress)

    def incremental_backup(self, on_progress: Progress | None = None) -> str:
        """Back up what changed since the newest backup; a full one if none exists."""
        with self._exclusive():
            chain = self._current_chain()
            if chain is None:
                return self._full(on_progress)
            return self._incremental(self._changes(chain), on_progress)

    def scheduled_backup(self) -> str | None:
        """The scheduler's backup: incremental, or None if nothing changed.

        A full backup is made when there is no chain to build on, or when the chain
        already holds half of ``max_backups``, so that retention can drop old chains
        whole.
        """
        with self._exclusive():
            chain = self._current_chain()
            if chain is None or self._chain_is_full(chain):
                return self._full(None)
            changes = self._changes(chain)
            if not changes.changed and not changes.deleted:
                return None
            return self._incremental(changes, None)

    # reading backups ------------------------------------------------------------------

    def list_backups(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Backups, newest first (those holding ``conversation_id``, if given)."""
        if conversation_id is not None:
            check_id(conversation_id, "conversation_id")
        return [
            self._describe(manifest)
            for manifest in reversed(self._manifests())
            if conversation_id is None or conversation_id in manifest.conversations
        ]

    def describe(self, backup_id: str) -> dict[str, Any]:
        """One backup, as list_backups describes it."""
        return self._describe(self._lookup(backup_id))

    def last_backup_time(self) -> float | None:
        """When the newest backup was made (epoch seconds); None if there is none."""
        for backup_id in reversed(self._backup_ids()):
            manifest = self._read_manifest(backup_id)
            if manifest is not None:
                return manifest.created_at
        return None

    # restoring --------------------------------------------------------------------------

    def restore(self, backup_id: str, on_progress: Progress | None = None) -> RestoreSummary:
        """Bring the store back to the state a backup recorded.

        For a full or incremental backup, its chain is replayed: every conversation it
        records replaces the current one, and conversations deleted in the chain are
        deleted. Conversations the backup knows nothing of are left alone. All the
        archives are checked before anything is written.
        """
        with self._exclusive():
            target = self._lookup(backup_id)
            if target.kind == "conversation" and target.conversation_id is not None:
                self._restore_one(target.conversation_id, target)
                return RestoreSummary(restored=1, deleted=0)
            chain = self._chain(target, self._by_id())
            final = _final_holders(chain)
            for manifest in chain:
                verify_archive(self._archive(manifest))
            restored = self._replay(chain, final, on_progress)
            deleted = sum(
                self.store.delete_conversation(cid) for cid, holder in final.items() if not holder
            )
            return RestoreSummary(restored=restored, deleted=deleted)

    def restore_conversation(self, conversation_id: str, backup_id: str) -> bool:
        """Replace one conversation with the state it had in a backup.

        False if the backup does not hold the conversation (it did not exist or was
        deleted by then).
        """
        check_id(conversation_id, "conversation_id")
        with self._exclusive():
            holder = _holder(conversation_id, self._lookup(backup_id), self._by_id())
            if holder is None:
                return False
            self._restore_one(conversation_id, holder)
            return True

    def recover(self, conversation_ids: Iterable[str]) -> dict[str, str]:
        """Bring back each conversation's state from the newest backup holding it (after
        a repair set its damaged files aside): {conversation id: backup id used}."""
        recovered = {}
        for conversation_id in conversation_ids:
            holding = self.list_backups(conversation_id)
            if holding and self.restore_conversation(conversation_id, holding[0]["backup_id"]):
                recovered[conversation_id] = holding[0]["backup_id"]
        return recovered

    # internals: writing ---------------------------------------------------------------

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the directory's lock (threads and processes alike)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(
            self.directory / _LOCK_FILE, shared=False, timeout=self.store.config.lock_timeout
        )
        with lock:
            yield

    def _full(self, on_progress: Progress | None) -> str:
        """Write a full backup (the lock is held)."""
        total = self.store.count_conversations()
        entries = exported(self.store, iter_conversations(self.store))
        return self._write("full", None, _reporting(entries, total, on_progress))

    def _incremental(self, changes: _Changes, on_progress: Progress | None) -> str:
        """Write an incremental backup of ``changes`` (the lock is held)."""
        entries = _reporting(
            self._changed_entries(changes), len(changes.changed) + len(changes.deleted), on_progress
        )
        return self._write("incremental", changes.since, entries)

    def _changes(self, chain: list[Manifest]) -> _Changes:
        """Conversations whose version differs from the chain's record, and deletions."""
        recorded = _chain_state(chain)
        current = {c.id: c.version for c in iter_conversations(self.store)}
        return _Changes(
            since=chain[-1].backup_id,
            changed=[cid for cid, version in current.items() if recorded.get(cid) != version],
            deleted=sorted(set(recorded) - set(current)),
        )

    def _changed_entries(self, changes: _Changes) -> Iterator[Entry]:
        """The changed conversations, read one at a time, then the deletions."""
        gone = list(changes.deleted)
        for conversation_id in changes.changed:
            record = self.store.export_conversation(conversation_id)
            if record is not None:
                yield ConversationEntry(*record)
            else:  # deleted while the backup was running
                gone.append(conversation_id)
        for conversation_id in gone:
            yield DeletedEntry(conversation_id)

    def _write(
        self,
        kind: ArchiveKind,
        since: str | None,
        entries: Iterable[Entry],
        conversation_id: str | None = None,
    ) -> str:
        """Write a backup into a temporary directory and rename it into place; its id."""
        self._remove_debris()
        created_at = time.time()
        backup_id = _next_backup_id(created_at, self._backup_ids())
        temp = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=self.directory))
        try:
            header = Header(kind, created_at, redact_url(self.store.url), since)
            manifest = self._fill(temp, backup_id, header, entries, conversation_id)
            _write_durably(temp / MANIFEST, manifest.model_dump_json(indent=1).encode())
            fsync_directory(temp)
            temp.rename(self.directory / backup_id)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        fsync_directory(self.directory)
        log.info("backup %s (%s) written to %s", backup_id, kind, self.directory)
        self._prune()
        return backup_id

    def _fill(
        self,
        temp: Path,
        backup_id: str,
        header: Header,
        entries: Iterable[Entry],
        conversation_id: str | None,
    ) -> Manifest:
        """Write the archive into ``temp`` and return the manifest describing it."""
        name = ARCHIVE_NAMES[1] if self.store.config.enable_compression else ARCHIVE_NAMES[0]
        versions: dict[str, int] = {}
        deleted: list[str] = []
        with ArchiveWriter(temp / name, header) as writer:
            for entry in entries:
                if isinstance(entry, ConversationEntry):
                    writer.write_conversation(entry.conversation, entry.messages)
                    versions[entry.conversation.id] = entry.conversation.version
                else:
                    writer.write_deleted(entry.conversation_id)
                    deleted.append(entry.conversation_id)
            counts = writer.commit()
        return Manifest(
            backup_id=backup_id,
            kind=header.kind,
            created_at=header.created_at,
            conversations=versions,
            deleted=deleted,
            since=header.since,
            conversation_id=conversation_id,
            counts={
                "conversations": counts.conversations,
                "messages": counts.messages,
                "deleted": counts.deleted,
            },
        )

    # internals: retention ---------------------------------------------------------------

    def _chain_is_full(self, chain: list[Manifest]) -> bool:
        """Whether the scheduler should start a new chain rather than extend this one."""
        limit = self.store.config.max_backups
        return bool(limit) and len(chain) >= max(1, limit // 2)

    def _prune(self) -> None:
        """Keep the newest ``max_backups`` backups and every backup their chains need;
        remove the rest. 0 keeps everything."""
        limit = self.store.config.max_backups
        if not limit:
            return
        manifests = self._by_id()
        keep: set[str] = set()
        for backup_id in sorted(manifests, reverse=True)[:limit]:
            keep.update(m.backup_id for m in _links(manifests[backup_id], manifests))
        for backup_id in manifests:
            if backup_id not in keep:
                self._remove(backup_id)

    def _remove(self, backup_id: str) -> None:
        """Delete a backup, its manifest first so a half-deleted one is never listed."""
        directory = self.directory / backup_id
        (directory / MANIFEST).unlink(missing_ok=True)
        fsync_directory(directory)
        shutil.rmtree(directory, ignore_errors=True)
        log.info("backup %s removed (retention)", backup_id)

    def _remove_debris(self) -> None:
        """Remove temporary directories and manifest-less backups left by a crash.

        Called with the lock held, so no other writer is using them.
        """
        for path in self.directory.iterdir():
            unfinished = path.name.startswith(_TEMP_PREFIX) or (
                BACKUP_ID.fullmatch(path.name) is not None and not (path / MANIFEST).exists()
            )
            if unfinished and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)

    # internals: reading ---------------------------------------------------------------

    def _backup_ids(self) -> list[str]:
        """Names of the directories that look like backups, oldest first."""
        try:
            names = [p.name for p in self.directory.iterdir() if BACKUP_ID.fullmatch(p.name)]
        except FileNotFoundError:
            return []
        return sorted(names)

    def _read_manifest(self, backup_id: str) -> Manifest | None:
        """The backup's manifest; None if it has none (unfinished or being deleted)."""
        path = no_links(self.directory / backup_id / MANIFEST, self.directory)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            manifest = Manifest.model_validate(json.loads(data))
        except (ValueError, ValidationError) as exc:
            raise DataIntegrityError(f"backup manifest {path} is damaged: {exc}") from None
        if manifest.backup_id != backup_id:
            raise DataIntegrityError(f"backup manifest {path} names backup {manifest.backup_id}")
        return manifest

    def _manifests(self) -> list[Manifest]:
        """Manifests of the finished backups, oldest first."""
        found = (self._read_manifest(backup_id) for backup_id in self._backup_ids())
        return [manifest for manifest in found if manifest is not None]

    def _by_id(self) -> dict[str, Manifest]:
        """The finished backups' manifests by backup id."""
        return {manifest.backup_id: manifest for manifest in self._manifests()}

    def _lookup(self, backup_id: str) -> Manifest:
        """The manifest of a finished backup; InvalidInputError if there is none."""
        manifest = self._read_manifest(check_backup_id(backup_id))
        if manifest is None:
            raise InvalidInputError(f"there is no backup {backup_id!r} in {self.directory}")
        return manifest

    def _chain(self, manifest: Manifest, manifests: dict[str, Manifest]) -> list[Manifest]:
        """The full backup ``manifest`` builds on and the incrementals up to it, in order."""
        chain = _links(manifest, manifests)[::-1]
        if chain[0].kind != "full":
            raise DataIntegrityError(
                f"backup {manifest.backup_id} in {self.directory} cannot be restored: "
                f"backup {chain[0].since} it builds on is missing"
            )
        return chain

    def _current_chain(self) -> list[Manifest] | None:
        """The chain of the newest full or incremental backup; None if there is none whole."""
        manifests = self._by_id()
        heads = [m for m in manifests.values() if m.kind != "conversation"]
        if not heads:
            return None
        chain = _links(max(heads, key=lambda m: m.backup_id), manifests)[::-1]
        return chain if chain[0].kind == "full" else None

    def _archive(self, manifest: Manifest) -> Path:
        """The backup's archive file, compressed or not."""
        directory = self.directory / manifest.backup_id
        for name in ARCHIVE_NAMES:
            if (directory / name).exists():
                return no_links(directory / name, self.directory)
        raise DataIntegrityError(f"backup {manifest.backup_id} in {self.directory} has no archive")

    def _describe(self, manifest: Manifest) -> dict[str, Any]:
        """A backup as list_backups shows it."""
        directory = self.directory / manifest.backup_id
        return {
            "backup_id": manifest.backup_id,
            "kind": manifest.kind,
            "created_at": manifest.created_at,
            "since": manifest.since,
            "conversation_id": manifest.conversation_id,
            "conversation_ids": sorted(manifest.conversations),
            "deleted": list(manifest.deleted),
            "counts": dict(manifest.counts),
            "size": _size(directory),
        }

    # internals: restoring -------------------------------------------------------------

    def _replay(
        self,
        chain: list[Manifest],
        final: dict[str, str | None],
        on_progress: Progress | None,
    ) -> int:
        """Import each conversation from the backup holding its last state; how many."""
        total = sum(1 for holder in final.values() if holder)
        done = 0
        for manifest in chain:
            with ArchiveReader(self._archive(manifest)) as reader:
                for entry in reader.entries():
                    if (
                        isinstance(entry, ConversationEntry)
                        and final.get(entry.conversation.id) == manifest.backup_id
                    ):
                        self.store.import_conversation(
                            entry.conversation, entry.messages, replace=True
                        )
                        done += 1
                        if on_progress is not None:
                            on_progress(done, total)
        return done

    def _restore_one(self, conversation_id: str, holder: Manifest) -> None:
        """Import the conversation from ``holder``'s archive, once the archive is checked."""
        found: ConversationEntry | None = None
        with ArchiveReader(self._archive(holder)) as reader:
            for entry in reader.entries():
                if (
                    isinstance(entry, ConversationEntry)
                    and entry.conversation.id == conversation_id
                ):
                    found = entry
        if found is None:
            raise DataIntegrityError(
                f"backup {holder.backup_id} in {self.directory} lists conversation "
                f"{conversation_id!r} but its archive does not hold it"
            )
        self.store.import_conversation(found.conversation, found.messages, replace=True)


class BackupScheduler:
    """Runs ``BackupManager.scheduled_backup`` every ``interval`` seconds on a daemon thread.

    Failures are logged (logger ``convstore.backup``) and the schedule goes on.
    ``stop()`` wakes the thread at once; it never keeps a process alive.
    """

    def __init__(self, backups: BackupManager, interval: float) -> None:
        self.backups = backups
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="convstore-backups", daemon=True)

    def start(self) -> None:
        """Start the thread; the first backup comes ``interval`` seconds later."""
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop the schedule; with ``wait``, also wait for a backup under way to end."""
        self._stop.set()
        if wait and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread.is_alive()

    def _run(self) -> None:
        """Back up every ``interval`` seconds until stopped; waiting never delays a stop."""
        while not self._stop.wait(self.interval):
            self._run_once()

    def _run_once(self) -> None:
        """One scheduled backup; a failure is logged, not raised."""
        try:
            self.backups.scheduled_backup()
        except Exception:
            log.exception("scheduled backup into %s failed", self.backups.directory)


# helpers ------------------------------------------------------------------------------


def _next_backup_id(created_at: float, existing: list[str]) -> str:
    """A backup id from ``created_at`` that sorts after every existing one."""
    stamp = datetime.fromtimestamp(created_at, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    newest = existing[-1] if existing else ""
    if stamp > newest:
        return stamp
    base, _, suffix = newest.partition("-")
    return f"{base}-{int(suffix or 0) + 1:03d}"


def _links(manifest: Manifest, manifests: dict[str, Manifest]) -> list[Manifest]:
    """``manifest`` and the backups it builds on, newest first, as far as they exist."""
    links = [manifest]
    while links[-1].since is not None and links[-1].since < links[-1].backup_id:
        earlier = manifests.get(links[-1].since)
        if earlier is None:
            break
        links.append(earlier)
    return links


def _chain_state(chain: list[Manifest]) -> dict[str, int]:
    """Conversation versions as the chain records them after its last backup."""
    state: dict[str, int] = {}
    for manifest in chain:
        state.update(manifest.conversations)
        for conversation_id in manifest.deleted:
            state.pop(conversation_id, None)
    return state


def _final_holders(chain: list[Manifest]) -> dict[str, str | None]:
    """For each conversation the chain mentions, the backup holding its last state
    (None if the chain ends with it deleted)."""
    holders: dict[str, str | None] = {}
    for manifest in chain:
        holders.update(dict.fromkeys(manifest.conversations, manifest.backup_id))
        holders.update(dict.fromkeys(manifest.deleted))
    return holders


def _holder(
    conversation_id: str, target: Manifest, manifests: dict[str, Manifest]
) -> Manifest | None:
    """The backup holding the conversation's state as of ``target``; None if absent."""
    if target.kind == "conversation":
        return target if target.conversation_id == conversation_id else None
    for manifest in _links(target, manifests):
        if conversation_id in manifest.conversations:
            return manifest
        if conversation_id in manifest.deleted:
            return None
    return None


def _reporting(
    entries: Iterable[Entry], total: int, on_progress: Progress | None
) -> Iterator[Entry]:
    """``entries``, calling ``on_progress`` after each one."""
    for done, entry in enumerate(entries, 1):
        yield entry
        if on_progress is not None:
            on_progress(done, max(total, done))


def _size(directory: Path) -> int:
    """Bytes of the files in ``directory``; 0 if another process removed it meanwhile."""
    try:
        return sum(path.stat().st_size for path in directory.iterdir())
    except FileNotFoundError:
        return 0


def _write_durably(path: Path, data: bytes) -> None:
    """Write a new file and sync it to disk."""
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
