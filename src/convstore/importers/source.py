"""Reading a data export: its conversations one at a time, and checks on their fields.

An export is ``conversations.json`` (a JSON array of conversations), the directory that
holds it, or the zip the service sends, read in place. Some exports split the array into
``conversations-000.json``, ``conversations-001.json``...: those are read in turn. The
array is decoded element by element, so only one conversation is in memory at a time
however big the export is.
"""

from __future__ import annotations

import codecs
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from convstore.errors import InvalidInputError

CHUNK = 1 << 20  # characters decoded per read
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_PART = re.compile(r"conversations-\d+\.json")
_ZIP_MAGIC = b"PK\x03\x04"


class FieldError(Exception):
    """A field of a conversation that cannot be imported: where it is ("" for the whole
    conversation) and what is wrong.

    The importer turns it into an InvalidInputError that names the conversation too.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


# field checks -------------------------------------------------------------------------

_KINDS: dict[type, str] = {
    str: "a string",
    dict: "an object",
    list: "an array",
    bool: "true or false",
}


def expect(value: Any, kind: type, path: str, *, optional: bool = False) -> Any:
    """``value`` if it is of ``kind`` (None too if ``optional``), else FieldError at ``path``."""
    if value is None and optional:
        return None
    if isinstance(value, kind):
        return value
    raise FieldError(path, f"expected {_KINDS[kind]}{' or null' if optional else ''}")


def required(obj: dict[str, Any], key: str, kind: type, path: str) -> Any:
    """``obj[key]``, which must be there and be of ``kind``."""
    if key not in obj:
        raise FieldError(f"{path}.{key}" if path else key, "is missing")
    return expect(obj[key], kind, f"{path}.{key}" if path else key)


def optional(obj: dict[str, Any], key: str, kind: type, path: str) -> Any:
    """``obj[key]`` if it is there and not null (then of ``kind``), else None."""
    return expect(obj.get(key), kind, f"{path}.{key}" if path else key, optional=True)


def epoch(obj: dict[str, Any], key: str, path: str) -> float | None:
    """A time given in seconds since the epoch (a number or null)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"{path}.{key}" if path else key, "expected a number of seconds or null")
    return float(value)


def iso_time(obj: dict[str, Any], key: str, path: str) -> float | None:
    """A time given as ISO 8601 text (or null), in seconds since the epoch; a time
    without a zone is taken as UTC."""
    value = expect(obj.get(key), str, f"{path}.{key}" if path else key, optional=True)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(f"{path}.{key}" if path else key, "expected an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def without(obj: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """``obj`` without ``keys``: what a mapping did not consume, to be kept as is."""
    return {k: v for k, v in obj.items() if k not in keys}


# reading the export -------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    """One JSON file of the export: its name in messages, its size and how to open it."""

    name: str
    size: int
    open: Callable[[], IO[bytes]]


class ExportReader:
    """The conversations of an export, read one at a time.

    ``done`` and ``total`` count bytes of JSON read and in all, for progress bars.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done = 0
        self._stack = ExitStack()
        try:
            self._members = self._find_members()
        except BaseException:
            self._stack.close()
            raise
        self.total = sum(member.size for member in self._members)

    def conversations(self) -> Iterator[tuple[str, Any]]:
        """(where, value) of each element of the conversation arrays, in order; ``where``
        names the element for messages ("conversation #3")."""
        number = 0
        for member in self._members:
            with member.open() as stream:
                for value in _ArrayReader(stream, member.name, self._count).items():
                    number += 1
                    yield f"conversation #{number}", value

    def close(self) -> None:
        """Close the zip, if the export is one."""
        self._stack.close()

    def __enter__(self) -> ExportReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _count(self, size: int) -> None:
        self.done += size

    def _find_members(self) -> list[_Member]:
        """The export's conversation files: the file itself, or those in a directory or zip."""
        path = self.path
        try:
            if path.is_dir():
                names = [p.name for p in path.iterdir() if p.is_file()]
                return [_file_member(path / name) for name in _conversation_files(names, path)]
            with path.open("rb") as probe:
                is_zip = probe.read(4) == _ZIP_MAGIC
            if not is_zip:
                return [_file_member(path)]
            archive = self._stack.enter_context(zipfile.ZipFile(path))
        except (OSError, zipfile.BadZipFile) as exc:
            raise InvalidInputError(f"cannot read export {path}: {_reason(exc)}") from None
        infos = {info.filename: info for info in archive.infolist() if not info.is_dir()}
        return [
            _Member(f"{path} ({name})", infos[name].file_size, _opener(archive, name))
            for name in _conversation_files(list(infos), path)
        ]


def _conversation_files(names: list[str], where: Path) -> list[str]:
    """The names (paths within a zip) of the conversation files among ``names``: the
    shallowest conversations.json, else every conversations-NNN.json in order."""
    whole = [n for n in names if n.rsplit("/", 1)[-1] == "conversations.json"]
    if whole:
        return [min(whole, key=lambda n: (n.count("/"), n))]
    parts = sorted(n for n in names if _PART.fullmatch(n.rsplit("/", 1)[-1]))
    if not parts:
        raise InvalidInputError(f"export {where} holds no conversations.json")
    return parts


def _file_member(path: Path) -> _Member:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInputError(f"cannot read export {path}: {_reason(exc)}") from None
    return _Member(str(path), size, lambda: path.open("rb"))


def _opener(archive: zipfile.ZipFile, name: str) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(name)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


class _ArrayReader:
    """The elements of the JSON array a byte stream holds, decoded one at a time."""

    def __init__(self, stream: IO[bytes], name: str, count: Callable[[int], None]) -> None:
        self._stream = stream
        self._name = name
        self._count = count
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._json = json.JSONDecoder(parse_constant=_refuse_constant)
        self._buffer = ""
        self._pos = 0
        self._dropped = 0  # characters dropped from the front of the buffer
        self._eof = False

    def items(self) -> Iterator[Any]:
        """Each element, in order; InvalidInputError if the text is not a JSON array."""
        if self._next_char() != "[":
            raise self._error("expected a JSON array of conversations")
        self._pos += 1
        if self._next_char() == "]":
            self._pos += 1
        else:
            while True:
                yield self._value()
                separator = self._next_char()
                self._pos += 1
                if separator == "]":
                    break
                if separator != ",":
                    raise self._error("expected ',' or ']' after a conversation")
        if self._next_char() != "":
            raise self._error("unexpected text after the array")

    def _value(self) -> Any:
        """The JSON value at the current position, reading more text until it is whole."""
        self._next_char()
        while True:
            try:
                value, end = self._json.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                if self._eof:
                    raise self._error(f"invalid JSON ({exc.msg})", exc.pos) from None
                self._read(max(CHUNK, 2 * (len(self._buffer) - self._pos)))
                continue
            except ValueError as exc:  # NaN or an infinity
                raise self._error(f"invalid JSON ({exc})") from None
            except RecursionError:
                raise self._error("invalid JSON (nested too deeply)") from None
            if end == len(self._buffer) and not self._eof:  # a number may go on
                self._read(CHUNK)
                continue
            self._pos = end
            return value

    def _next_char(self) -> str:
        """The next character that is not whitespace ("" at the end), left unread."""
        while True:
            self._pos = _WHITESPACE.match(self._buffer, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buffer) or self._eof:
                return self._buffer[self._pos : self._pos + 1]
            self._read(CHUNK)

    def _read(self, size: int) -> None:
        """Append about ``size`` more characters to the buffer, dropping what was used."""
        if self._pos > CHUNK:
            self._dropped += self._pos
            self._buffer = self._buffer[self._pos :]
            self._pos = 0
        try:
            data = self._stream.read(size)
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise self._error("is not UTF-8 text") from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise self._error(f"cannot be read ({_reason(exc)})") from None
        self._count(len(data))
        self._eof = not data
        self._buffer += text

    def _error(self, problem: str, at: int | None = None) -> InvalidInputError:
        where = self._dropped + (self._pos if at is None else at)
        return InvalidInputError(f"{self._name}: {problem} at character {where}")


def _refuse_constant(name: str) -> None:
    """Refuse NaN and the infinities, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not valid JSON")
