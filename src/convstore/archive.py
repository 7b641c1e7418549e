"""The portable archive: any store's conversations as one versioned JSON Lines file.

Layout, one JSON object per line (UTF-8)::

    {"format": "convstore-archive", "version": 1, "created_at": ..., "kind": ...,
     "source": ..., "since": ...}                                   the header
    {"type": "conversation", "record": {...}}                      a conversation,
    {"type": "message", "record": {...}}                           then its messages
    {"type": "deleted", "conversation_id": "..."}                  incremental archives
    {"type": "end", "conversations": N, "messages": M, "sha256": "..."}

The trailer's sha256 covers the bytes of every line before it, so a truncated or
altered file is told apart from a whole one. A name ending in ``.gz`` is written
gzipped; reading recognises gzip by its magic bytes. Writing and reading stream: at
most one conversation is held in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from convstore.errors import ConcurrencyError, DataIntegrityError, InvalidInputError
from convstore.fileio import fsync_directory
from convstore.ids import check_id
from convstore.models import Conversation, Message
from convstore.record_checks import check_record
from convstore.store import ConversationStore, check_import
from convstore.validation import dump_json

FORMAT = "convstore-archive"
VERSION = 1
PAGE_SIZE = 500
GZIP_MAGIC = b"\x1f\x8b"

ArchiveKind = Literal["full", "incremental", "conversation"]
ARCHIVE_KINDS: tuple[str, ...] = get_args(ArchiveKind)

_Record = TypeVar("_Record", Conversation, Message)

Progress = Callable[[int, int], None]
"""Called with (conversations done, conversations in all) as work goes on."""


@dataclass(frozen=True)
class Header:
    """What an archive holds and where it came from."""

    kind: ArchiveKind
    created_at: float
    source: str
    since: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The header line's object."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "kind": self.kind,
            "source": self.source,
            "since": self.since,
        }


@dataclass(frozen=True)
class ConversationEntry:
    """A conversation and every message it holds, as exported."""

    conversation: Conversation
    messages: list[Message]


@dataclass(frozen=True)
class DeletedEntry:
    """A conversation deleted since the backup an incremental archive builds on."""

    conversation_id: str


Entry = ConversationEntry | DeletedEntry


@dataclass
class ArchiveCounts:
    """How many records an archive holds."""

    conversations: int = 0
    messages: int = 0
    deleted: int = 0


def redact_url(url: str) -> str:
    """``url`` without a user name or password, fit to be recorded in an archive."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# writing ------------------------------------------------------------------------------


class ArchiveWriter:
    """Writes an archive into a temporary file beside ``path``.

    ``commit()`` adds the trailer, syncs the file and renames it into place, so
    ``path`` only ever holds a whole archive; leaving the block without committing
    removes the temporary file.
    """

    def __init__(self, path: str | Path, header: Header) -> None:
        self.path = Path(path)
        self.counts = ArchiveCounts()
        self._digest = hashlib.sha256()
        self._committed = False
        self._temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        try:
            self._raw: io.BufferedIOBase = open(self._temp, "xb")  # noqa: SIM115 - closed by commit/discard
        except OSError as exc:
            raise InvalidInputError(f"cannot write archive {self.path}: {exc.strerror}") from None
        self._out: io.BufferedIOBase = (
            gzip.GzipFile(filename="", fileobj=self._raw, mode="wb", mtime=0)
            if self.path.name.endswith(".gz")
            else self._raw
        )
        self._line(header.to_json())

    def write_conversation(self, conversation: Conversation, messages: Sequence[Message]) -> None:
        """Add a conversation followed by its messages."""
        self._line({"type": "conversation", "record": conversation.model_dump(mode="json")})
        for message in messages:
            self._line({"type": "message", "record": message.model_dump(mode="json")})
        self.counts.conversations += 1
        self.counts.messages += len(messages)

    def write_deleted(self, conversation_id: str) -> None:
        """Record that a conversation was deleted."""
        self._line({"type": "deleted", "conversation_id": check_id(conversation_id)})
        self.counts.deleted += 1

    def commit(self) -> ArchiveCounts:
        """Finish the archive durably and move it to its name."""
        trailer = {
            "type": "end",
            "conversations": self.counts.conversations,
            "messages": self.counts.messages,
            "sha256": self._digest.hexdigest(),
        }
        self._out.write(_encode(trailer))
        if self._out is not self._raw:
            self._out.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._temp, self.path)
        self._committed = True
        fsync_directory(self.path.parent)
        return self.counts

    def discard(self) -> None:
        """Drop the unfinished archive."""
        try:
            self._out.close()
        finally:
            self._raw.close()
            self._temp.unlink(missing_ok=True)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            self.discard()

    def _line(self, value: dict[str, Any]) -> None:
        data = _encode(value)
        self._digest.update(data)
        self._out.write(data)


def _encode(value: dict[str, Any]) -> bytes:
    """One archive line: compact JSON, UTF-8, newline-terminated."""
    return (dump_json(value) + "\n").encode("utf-8")


# reading ------------------------------------------------------------------------------


@dataclass
class _Pending:
    """A conversation read from the archive whose messages are still being read."""

    line: int
    conversation: Conversation
    messages: list[Message] = field(default_factory=list)


class ArchiveReader:
    """Reads an archive as a stream, checking every line; the header is read on opening.

    ``entries()`` yields conversations as they are read and checks the trailer
    (checksum and counts) once the last line is read, so a caller that must not act
    on a damaged archive reads it through once (:func:`verify_archive`) before acting.
    Any problem raises DataIntegrityError naming the file and line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.counts = ArchiveCounts()
        self._digest = hashlib.sha256()
        self._line_no = 0
        self._conversation_ids: set[str] = set()
        self._stream = _open_for_reading(self.path)
        try:
            self._lines = iter(self._stream)
            self.header = self._read_header()
        except BaseException:
            self._stream.close()
            raise

    def entries(self) -> Iterator[Entry]:
        """The archive's conversations and deletions, in order."""
        pending: _Pending | None = None
        for record in self._body():
            kind = record.get("type")
            if kind == "message":
                if pending is None:
                    raise self._damage("a message comes before any conversation")
                pending.messages.append(self._record(Message, record))
                continue
            if pending is not None:
                yield self._finish(pending)
                pending = None
            if kind == "conversation":
                pending = _Pending(self._line_no, self._record(Conversation, record))
            elif kind == "deleted":
                yield DeletedEntry(self._deleted_id(record))
            else:
                raise self._damage(f"unknown line type {kind!r}")
        if pending is not None:
            yield self._finish(pending)

    def close(self) -> None:
        """Close the file."""
        self._stream.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _read_header(self) -> Header:
        header = self._next()
        if header is None:
            raise self._damage("the file is empty", ahead=1)
        self._digest.update(header[0])
        value = header[1]
        if value.get("format") != FORMAT:
            raise self._damage(f"not a {FORMAT} file (format {value.get('format')!r})")
        if value.get("version") != VERSION or isinstance(value.get("version"), bool):
            raise self._damage(
                f"archive version {value.get('version')!r} is not supported (only {VERSION})"
            )
        kind, created_at = value.get("kind"), value.get("created_at")
        source, since = value.get("source"), value.get("since")
        if kind not in ARCHIVE_KINDS:
            raise self._damage(f"unknown archive kind {kind!r}")
        if (
            isinstance(created_at, bool)
            or not isinstance(created_at, int | float)
            or not math.isfinite(created_at)
        ):
            raise self._damage("the header's created_at is missing or invalid")
        if not isinstance(source, str):
            raise self._damage("the header's source is missing or invalid")
        if since is not None and not isinstance(since, str):
            raise self._damage("the header's since is not a string")
        return Header(kind=kind, created_at=float(created_at), source=source, since=since)

    def _body(self) -> Iterator[dict[str, Any]]:
        """The lines between header and trailer; then the trailer is checked."""
        while (line := self._next()) is not None:
            raw, value = line
            if value.get("type") == "end":
                self._check_trailer(value)
                return
            self._digest.update(raw)
            yield value
        raise self._damage("the archive ends without its end line: it is truncated", ahead=1)

    def _check_trailer(self, trailer: dict[str, Any]) -> None:
        """The checksum and counts match what was read, and nothing follows."""
        if trailer.get("sha256") != self._digest.hexdigest():
            raise self._damage("checksum mismatch: the archive was altered or damaged")
        if (trailer.get("conversations"), trailer.get("messages")) != (
            self.counts.conversations,
            self.counts.messages,
        ):
            raise self._damage("the end line's counts do not match the records read")
        if self._next() is not None:
            raise self._damage("there are lines after the end line")

    def _next(self) -> tuple[bytes, dict[str, Any]] | None:
        """The next line and its JSON object; None at the end of the file."""
        try:
            raw = next(self._lines, None)
        except (OSError, EOFError, zlib.error) as exc:
            raise self._damage(f"the file cannot be read ({exc})", ahead=1) from None
        if raw is None:
            return None
        self._line_no += 1
        try:
            value = json.loads(raw, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise self._damage(f"not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise self._damage("a line must hold a JSON object")
        return raw, value

    def _record(self, model: type[_Record], line: dict[str, Any]) -> _Record:
        """The line's record, validated by its model and the store's checks."""
        try:
            record = model.model_validate(line.get("record"))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()
            )
            raise self._damage(f"invalid {model.__name__.lower()} record: {problems}") from None
        if isinstance(record, Conversation):
            self.counts.conversations += 1
        else:
            self.counts.messages += 1
        return self._checked(record)

    def _checked(self, record: _Record) -> _Record:
        """Refuse values the store would refuse when they are written through its API."""
        try:
            check_record(record)
        except InvalidInputError as exc:
            raise self._damage(exc.message) from None
        if isinstance(record, Conversation):
            if record.id in self._conversation_ids:
                raise self._damage(f"conversation {record.id!r} appears twice")
            self._conversation_ids.add(record.id)
        return record

    def _deleted_id(self, line: dict[str, Any]) -> str:
        """The checked id of a deletion line."""
        try:
            conversation_id = check_id(line.get("conversation_id"), "conversation_id")
        except InvalidInputError as exc:
            raise self._damage(exc.message) from None
        self.counts.deleted += 1
        return conversation_id

    def _finish(self, pending: _Pending) -> ConversationEntry:
        """The conversation with all its messages, checked for consistency as a whole."""
        try:
            check_import(pending.conversation, pending.messages)
        except InvalidInputError as exc:
            raise self._damage(exc.message, line=pending.line) from None
        return ConversationEntry(pending.conversation, pending.messages)

    def _damage(
        self, problem: str, *, ahead: int = 0, line: int | None = None
    ) -> DataIntegrityError:
        """The error for ``problem`` at the current line (or ``ahead`` of it, or ``line``)."""
        where = self._line_no + ahead if line is None else line
        return DataIntegrityError(f"archive {self.path}, line {where}: {problem}")


def _open_for_reading(path: Path) -> io.BufferedIOBase:
    """The archive's decompressed bytes; gzip is recognised by its magic bytes."""
    try:
        with path.open("rb") as probe:
            compressed = probe.read(2) == GZIP_MAGIC
        return gzip.open(path, "rb") if compressed else path.open("rb")
    except OSError as exc:
        raise InvalidInputError(f"cannot read archive {path}: {exc.strerror or exc}") from None


def _refuse_constant(name: str) -> None:
    """Refuse NaN and the infinities, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not valid JSON")


def verify_archive(path: str | Path) -> tuple[Header, ArchiveCounts]:
    """Read the whole archive, checking every line and the trailer; its header and counts."""
    with ArchiveReader(path) as reader:
        for _ in reader.entries():
            pass
        return reader.header, reader.counts


# a whole store ------------------------------------------------------------------------


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
    store: ConversationStore, path: str | Path, *, on_progress: Progress | None = None
) -> ArchiveCounts:
    """Write every conversation of ``store`` to a full archive at ``path``."""
    total = store.count_conversations()
    header = Header(kind="full", created_at=time.time(), source=redact_url(store.url))
    with ArchiveWriter(path, header) as writer:
        for done, entry in enumerate(exported(store, iter_conversations(store)), 1):
            writer.write_conversation(entry.conversation, entry.messages)
            if on_progress is not None:
                on_progress(done, max(total, done))
        return writer.commit()


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
    """Import an archive into ``store``, after checking all of it.

    Without ``replace``, a conversation the store already has is a ConcurrencyError
    and nothing is imported. With it, such conversations are replaced and the
    archive's deletions are applied. A damaged archive raises DataIntegrityError and
    leaves the store unchanged.
    """
    counts = _check_importable(store, Path(path), replace)
    done = ArchiveCounts()
    with ArchiveReader(path) as reader:
        for entry in reader.entries():
            if isinstance(entry, ConversationEntry):
                store.import_conversation(entry.conversation, entry.messages, replace=replace)
                done.conversations += 1
                done.messages += len(entry.messages)
                if on_progress is not None:
                    on_progress(done.conversations, counts.conversations)
            elif replace:
                done.deleted += store.delete_conversation(entry.conversation_id)
    return done


def _check_importable(store: ConversationStore, path: Path, replace: bool) -> ArchiveCounts:
    """Read the archive through once, so that nothing is written from a damaged one."""
    with ArchiveReader(path) as reader:
        for entry in reader.entries():
            if (
                not replace
                and isinstance(entry, ConversationEntry)
                and store.get_conversation(entry.conversation.id) is not None
            ):
                raise ConcurrencyError(
                    f"conversation {entry.conversation.id!r} already exists; "
                    "import with replace (--replace) to overwrite it"
                )
        return reader.counts
