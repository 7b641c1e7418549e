"""A JSON snapshot plus an append-only journal: cheap durable writes, readable files.

Each change is one journal line ``<crc32> <json>\\n`` written with a single ``write``:
it is there whole or not at all after a crash. A line without its newline or with a
bad checksum at the end of the journal is a torn write, ignored when read and cut off
by the next writer; anywhere else it is damage (DataIntegrityError naming the file).
Every line carries a number ``n``; the snapshot records the last number folded into it
(``applied``), so compaction (write a new snapshot, then empty the journal) is safe to
interrupt at any point. Writers must hold the file's exclusive lock.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convstore.errors import DataIntegrityError
from convstore.fileio import fsync_directory, no_links, write_all, write_atomic
from convstore.validation import dump_json

_GZIP_MAGIC = b"\x1f\x8b"
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a link in place of a journal is refused


@dataclass(frozen=True)
class Mark:
    """How far a reader got: the files' identities and the journal bytes consumed."""

    snapshot: tuple[int, int, int] | None  # (inode, size, mtime_ns), None if missing
    journal_inode: int | None
    journal_offset: int


@dataclass
class Loaded:
    """What a read found: the snapshot document, newer journal entries, and the mark."""

    snapshot: dict[str, Any] | None
    entries: list[dict[str, Any]]
    mark: Mark


class JournaledFile:
    """One snapshot file and its journal."""

    def __init__(
        self, snapshot: Path, journal: Path, temp_dir: Path, *, fsync: bool, root: Path
    ) -> None:
        self.snapshot = snapshot
        self.journal = journal
        self._root = root
        self._temp_dir = temp_dir
        self._fsync = fsync

    # reading ------------------------------------------------------------------------

    def load(self) -> Loaded:
        """Read the snapshot and every journal entry not yet folded into it."""
        no_links(self.snapshot, self._root)
        no_links(self.journal, self._root)
        snapshot_key = _stat_key(self.snapshot)
        document = None if snapshot_key is None else self._read_snapshot()
        applied = 0 if document is None else int(document.get("applied", 0))
        entries, inode, offset = self._read_journal(0)
        return Loaded(
            document,
            [e for e in entries if e["n"] > applied],
            Mark(snapshot_key, inode, offset),
        )

    def load_since(self, mark: Mark) -> Loaded | None:
        """Entries appended after ``mark``; None if the files were replaced since (reload)."""
        if _stat_key(self.snapshot) != mark.snapshot:
            return None
        try:
            stat = self.journal.stat()
        except FileNotFoundError:
            return None if mark.journal_inode is not None else Loaded(None, [], mark)
        if stat.st_ino != mark.journal_inode or stat.st_size < mark.journal_offset:
            return None
        if stat.st_size == mark.journal_offset:
            return Loaded(None, [], mark)
        entries, inode, offset = self._read_journal(mark.journal_offset)
        if inode != mark.journal_inode:
            return None
        return Loaded(None, entries, Mark(mark.snapshot, inode, offset))

    def exists(self) -> bool:
        return self.snapshot.exists()

    # writing (exclusive lock held) ------------------------------------------------------

    def append(self, entry: dict[str, Any], mark: Mark) -> Mark:
        """Append one entry after ``mark`` (the end of the last good line), cutting off
        any torn tail left by a crashed writer."""
        line = _encode_line(entry)
        try:
            fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | _NO_FOLLOW, 0o644)
        except OSError as exc:
            raise DataIntegrityError(f"cannot append to {self.journal}: {exc}") from exc
        try:
            stat = os.fstat(fd)
            offset = mark.journal_offset if stat.st_ino == mark.journal_inode else 0
            if stat.st_size != offset:
                os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            write_all(fd, line)
            if self._fsync:
                os.fsync(fd)
            inode = stat.st_ino
        finally:
            os.close(fd)
        return Mark(mark.snapshot, inode, offset + len(line))

    def write_snapshot(self, document: dict[str, Any], *, compress: bool) -> Mark:
        """Replace the snapshot atomically and empty the journal (compaction)."""
        data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
        if compress:
            data = gzip.compress(data, mtime=0)
        write_atomic(self.snapshot, data, self._temp_dir)
        inode = None
        if self.journal.exists():
            fd = os.open(self.journal, os.O_WRONLY)
            try:
                os.ftruncate(fd, 0)
                if self._fsync:
                    os.fsync(fd)
                inode = os.fstat(fd).st_ino
            finally:
                os.close(fd)
        return Mark(_stat_key(self.snapshot), inode, 0)

    def cut_torn_tail(self) -> int:
        """Remove an incomplete last line left by a crashed writer; the bytes removed."""
        _, _, end = self._read_journal(0)
        size = _size(self.journal)
        if size > end:
            os.truncate(self.journal, end)
        return size - end

    def remove(self) -> None:
        for path in (self.snapshot, self.journal):
            path.unlink(missing_ok=True)
        fsync_directory(self.snapshot.parent)

    def sizes(self) -> tuple[int, int]:
        """Bytes of the snapshot and of the journal."""
        return _size(self.snapshot), _size(self.journal)

    # internals ----------------------------------------------------------------------

    def _read_snapshot(self) -> dict[str, Any]:
        try:
            data = self.snapshot.read_bytes()
            if data.startswith(_GZIP_MAGIC):
                data = gzip.decompress(data)
            document = json.loads(data)
        except (OSError, EOFError, ValueError) as exc:
            raise DataIntegrityError(f"{self.snapshot} is damaged: {exc}") from exc
        if not isinstance(document, dict):
            raise DataIntegrityError(f"{self.snapshot} is damaged: not a JSON object")
        return document

    def _read_journal(self, start: int) -> tuple[list[dict[str, Any]], int | None, int]:
        """Entries from byte ``start``; the journal's inode and the end of its last good line."""
        try:
            with open(self.journal, "rb") as handle:
                inode = os.fstat(handle.fileno()).st_ino
                handle.seek(start)
                data = handle.read()
        except FileNotFoundError:
            return [], None, 0
        entries: list[dict[str, Any]] = []
        position = 0
        lines = data.split(b"\n")
        for number, line in enumerate(lines[:-1]):  # the piece after the last \n is torn
            entry = _decode_line(line)
            if entry is None:
                if number == len(lines) - 2 and not lines[-1]:
                    break  # a bad last line: a torn write, not yet repaired
                raise DataIntegrityError(
                    f"{self.journal} is damaged at byte {start + position}: bad journal line"
                )
            entries.append(entry)
            position += len(line) + 1
        return entries, inode, start + position


def _encode_line(entry: dict[str, Any]) -> bytes:
    body = dump_json(entry).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _decode_line(line: bytes) -> dict[str, Any] | None:
    checksum, _, body = line.partition(b" ")
    try:
        if int(checksum, 16) != zlib.crc32(body):
            return None
        entry = json.loads(body)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("n"), int) else None


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
