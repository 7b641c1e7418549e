"""Importing an export conversation by conversation: ids, idempotency, atomicity and
the report.

Each conversation is imported whole or not at all (one ``import_conversation``). Its
conversation metadata remembers where it came from (``source``: format, id, update time
and a digest of the exported conversation), so importing the same export again changes
nothing, and ``update`` replaces, as a whole, the conversations whose export changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convstore.errors import ConcurrencyError, InvalidInputError
from convstore.ids import MAX_CHOSEN_ID, is_valid_id, scoped_id
from convstore.importers.common import Built, SourceConversation, build_records, derived_id
from convstore.importers.source import ExportReader, FieldError
from convstore.models import Conversation
from convstore.store import ConversationStore
from convstore.validation import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    check_metadata,
    check_text,
    encode_content,
)

Progress = Callable[[int, int], None]
"""Called with (bytes of the export read, bytes in all) as work goes on."""


@dataclass(frozen=True)
class Format:
    """How one kind of export is read."""

    name: str  # "chatgpt", "claude": also the ``source.format`` of what it imports
    parse: Callable[[Any], SourceConversation]
    label: Callable[[Any], tuple[str | None, str | None]]  # (title, id) for messages


@dataclass
class ImportReport:
    """What an import did."""

    format: str
    conversations: int = 0  # read from the export
    imported: int = 0  # new in the store
    updated: int = 0  # replaced, because their export changed (update=True)
    unchanged: int = 0  # imported before, and the same in the export
    outdated: int = 0  # changed in the export since imported; left as stored
    messages: int = 0  # messages written
    branches: int = 0  # alternative branches written (edits, regenerations)
    skipped: Counter[str] = field(default_factory=Counter)  # nodes left out, by reason
    broken: list[str] = field(default_factory=list)  # conversations not imported, why

    def summary(self) -> list[str]:
        """The report as a few lines of text, as the CLI prints it."""
        lines = [
            f"{self.conversations} conversation(s) in the {self.format} export: "
            f"{self.imported} imported, {self.updated} updated, {self.unchanged} unchanged"
            + (
                f", {self.outdated} changed since imported (--update re-imports them)"
                if self.outdated
                else ""
            ),
            f"{self.messages} message(s) written, with {self.branches} alternative branch(es)",
        ]
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            lines.append(f"{sum(self.skipped.values())} node(s) skipped: {reasons}")
        if self.broken:
            lines.append(f"{len(self.broken)} broken conversation(s) not imported:")
            lines += [f"  {problem}" for problem in self.broken]
        return lines


def import_export(
    store: ConversationStore,
    path: str | Path,
    kind: Format,
    *,
    update: bool = False,
    skip_broken: bool = False,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import every conversation of the export at ``path``, one at a time.

    A broken conversation raises InvalidInputError naming it and the field, the ones
    before it staying imported; with ``skip_broken`` it is listed in the report instead.
    """
    report = ImportReport(kind.name)
    with ExportReader(path) as export:
        for where, raw in export.conversations():
            report.conversations += 1
            try:
                _import_one(store, kind, raw, where, update, report)
            except InvalidInputError as exc:
                if not skip_broken:
                    raise
                report.broken.append(exc.message)
            if on_progress is not None:
                on_progress(export.done, export.total)
    return report


def _import_one(
    store: ConversationStore,
    kind: Format,
    raw: Any,
    where: str,
    update: bool,
    report: ImportReport,
) -> None:
    """Import one conversation of the export, or count it unchanged or outdated."""
    label = _label(kind, raw, where)
    try:
        source = kind.parse(raw)
        digest, clean = _digest(raw)
        source.metadata["source"]["digest"] = digest
        existing = _find(store, kind.name, source.id)
        if existing is not None:
            if existing.metadata["source"].get("digest") == digest:
                report.unchanged += 1
                return
            if not update:
                report.outdated += 1
                return
        _check(source, clean)
        built = _write(store, kind.name, source, existing)
    except FieldError as exc:
        where = f"{exc.path}: " if exc.path else ""
        raise InvalidInputError(f"{label}: {where}{exc.problem}") from None
    except InvalidInputError as exc:
        raise InvalidInputError(f"{label}: {exc.message}") from None
    if existing is None:
        report.imported += 1
    else:
        report.updated += 1
    report.messages += len(built.messages)
    report.branches += built.branches
    report.skipped.update(built.skipped)


def _write(
    store: ConversationStore, fmt: str, source: SourceConversation, existing: Conversation | None
) -> Built:
    """Import the conversation's records (replacing ``existing``, if given) with the
    export's ids where they are valid convstore ids. Ids are store-wide: if another
    conversation (maybe another user's) holds one, the messages' ids, then the
    conversation's, are derived from the export's instead."""
    if existing is not None:
        attempts = [(existing.id, False), (existing.id, True)]
    else:
        chosen = _id(source.id, fmt, store.user_id, derive=False)
        derived = _id(source.id, fmt, store.user_id, derive=True)
        attempts = [(chosen, False), (chosen, True)] + ([(derived, True)] * (derived != chosen))
    for number, (conversation_id, derive) in enumerate(attempts, 1):
        try:
            return _store(store, source, conversation_id, existing, derive=derive)
        except ConcurrencyError:
            if number == len(attempts):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _store(
    store: ConversationStore,
    source: SourceConversation,
    conversation_id: str,
    existing: Conversation | None,
    *,
    derive: bool,
) -> Built:
    """Build the records with these ids and import them, all or nothing."""
    ids = {
        m.id: _message_id(m.id, conversation_id, store.user_id, derive)
        for m in source.messages
        if m.skip is None
    }
    built = build_records(
        source,
        conversation_id=conversation_id,
        message_id=ids,
        owner_id=store.user_id,
        version=1 if existing is None else existing.version + 1,
    )
    store.import_conversation(built.conversation, built.messages, replace=existing is not None)
    return built


def _id(source_id: str, fmt: str, owner: str | None, *, derive: bool) -> str:
    """The conversation id for a source id: itself if it is a valid id (in a user's view,
    scoped to the user as every id chosen there is), else one derived from it and the
    user, so that two users importing one export never collide."""
    chosen = None if derive else _chosen(source_id, owner)
    return chosen or derived_id(fmt, owner or "", source_id)


def _message_id(source_id: str, conversation_id: str, owner: str | None, derive: bool) -> str:
    """A message's id: the export's (as :func:`_id` takes it), else one derived from it
    and the conversation's."""
    chosen = None if derive else _chosen(source_id, owner)
    return chosen or derived_id(conversation_id, source_id)


def _chosen(source_id: str, owner: str | None) -> str | None:
    """The export's id as the store keeps an id chosen by its caller; None if it cannot
    be one."""
    if not is_valid_id(source_id):
        return None
    if owner is None:
        return source_id
    return scoped_id(source_id, owner) if len(source_id) <= MAX_CHOSEN_ID else None


def _find(store: ConversationStore, fmt: str, source_id: str) -> Conversation | None:
    """The conversation an earlier import made of this source conversation, if any."""
    owner = store.user_id
    candidates = [_id(source_id, fmt, owner, derive=False), _id(source_id, fmt, owner, derive=True)]
    for candidate in dict.fromkeys(candidates):
        found = store.get_conversation(candidate)
        mark = found.metadata.get("source") if found is not None else None
        if isinstance(mark, dict) and (mark.get("format"), mark.get("id")) == (fmt, source_id):
            return found
    return None


def _digest(raw: Any) -> tuple[str, bool]:
    """A digest of the exported conversation, to tell whether it changed; and whether
    all its text is text every backend can hold (no NUL, no lone surrogate), so that
    its messages need no checking one by one."""
    text = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    try:
        data, clean = text.encode("utf-8"), "\\u0000" not in text  # how JSON writes NUL
    except UnicodeEncodeError:
        data, clean = text.encode("utf-8", "surrogatepass"), False
    return hashlib.sha256(data).hexdigest(), clean


def _check(source: SourceConversation, clean: bool) -> None:
    """The checks the store applies to what callers write (lengths, text every backend
    can hold), which importing records exactly as given leaves out. Messages are checked
    one by one only if the export's text is not ``clean``, to find the culprit."""
    check_text(source.title, "title", MAX_NAME_LENGTH)
    check_text(source.description, "description", MAX_DESCRIPTION_LENGTH, optional=True)
    check_metadata(source.metadata)
    if clean:
        return
    for message in source.messages:
        if message.skip is None:
            try:
                encode_content(message.content, sys.maxsize)
                check_metadata(message.metadata)
            except InvalidInputError as exc:
                raise FieldError(message.path, exc.message) from None


def _label(kind: Format, raw: Any, where: str) -> str:
    """How messages name a conversation: "conversation 'Trip plan' (abc)"."""
    title, ident = kind.label(raw)
    name = f"conversation {title!r}" if title is not None else where
    return f"{name} ({ident})" if ident is not None else name
