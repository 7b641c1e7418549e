"""The archive's format: its header, the entries it holds, its counts, and the writer."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from convstore.errors import InvalidInputError
from convstore.fileio import fsync_directory
from convstore.ids import check_id
from convstore.models import Conversation, Message
from convstore.store import StoredRecord
from convstore.validation import dump_json

FORMAT = "convstore-archive"
VERSION = 1
GZIP_MAGIC = b"\x1f\x8b"

ArchiveKind = Literal["full", "incremental", "conversation"]
ARCHIVE_KINDS: tuple[str, ...] = get_args(ArchiveKind)

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
"""What a backup writes: conversations, and deletions in incremental archives."""

Item = ConversationEntry | DeletedEntry | StoredRecord
"""What an archive holds: entries, and the users' and API keys' records."""


@dataclass
class ArchiveCounts:
    """How many records an archive holds."""

    conversations: int = 0
    messages: int = 0
    deleted: int = 0
    records: int = 0


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

    def write_record(self, record: StoredRecord) -> None:
        """Add a record (a user or an API key) with its place and expiry."""
        self._line({"type": "record", "record": asdict(record)})
        self.counts.records += 1

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
            "records": self.counts.records,
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
