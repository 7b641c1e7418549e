"""Reading an archive: streamed, every line checked, damage named by file and line."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import ValidationError

from convstore.accounts import check_record as check_account_record
from convstore.archive.format import (
    ARCHIVE_KINDS,
    FORMAT,
    GZIP_MAGIC,
    VERSION,
    ArchiveCounts,
    ConversationEntry,
    DeletedEntry,
    Header,
    Item,
)
from convstore.errors import DataIntegrityError, InvalidInputError
from convstore.ids import check_id
from convstore.models import Conversation, Message
from convstore.record_checks import check_record
from convstore.store import StoredRecord, check_import
from convstore.validation import check_metadata, check_seconds

_Record = TypeVar("_Record", Conversation, Message)


@dataclass
class _Pending:
    """A conversation read from the archive whose messages are still being read."""

    line: int
    conversation: Conversation
    messages: list[Message] = field(default_factory=list)


class ArchiveReader:
    """Reads an archive as a stream, checking every line; the header is read on opening.

    ``entries()`` yields what the archive holds as it is read and checks the trailer
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
        self._record_keys: set[tuple[str, str]] = set()
        self._stream = _open_for_reading(self.path)
        try:
            self._lines = iter(self._stream)
            self.header = self._read_header()
        except BaseException:
            self._stream.close()
            raise

    def entries(self) -> Iterator[Item]:
        """The archive's records, conversations and deletions, in order."""
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
            elif kind == "record":
                yield self._stored_record(record.get("record"))
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
        # archives from before records were exported have no records count
        if (trailer.get("conversations"), trailer.get("messages"), trailer.get("records", 0)) != (
            self.counts.conversations,
            self.counts.messages,
            self.counts.records,
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

    def _stored_record(self, value: object) -> StoredRecord:
        """The checked record of a record line: a user or an API key."""
        fields = {"namespace", "key", "value", "expires_at"}
        if not isinstance(value, dict) or set(value) != fields:
            raise self._damage(f"a record must be an object of exactly {sorted(fields)}")
        record = StoredRecord(**value)
        expires_at = record.expires_at
        try:
            if not isinstance(record.namespace, str) or not isinstance(record.key, str):
                raise InvalidInputError("a record's namespace and key must be strings")
            check_seconds(expires_at, "a record's expires_at", optional=True)
            check_metadata(record.value, "value")
            check_account_record(record.namespace, record.key, record.value)
        except InvalidInputError as exc:
            raise self._damage(exc.message) from None
        if (record.namespace, record.key) in self._record_keys:
            raise self._damage(f"record {record.namespace}/{record.key} appears twice")
        self._record_keys.add((record.namespace, record.key))
        self.counts.records += 1
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
