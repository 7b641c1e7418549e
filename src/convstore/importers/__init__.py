"""Importers of the data exports of ChatGPT and Claude.

``import_chatgpt(store, path)`` and ``import_claude(store, path)`` read the export's
``conversations.json`` (the file, the directory holding it, or the export's zip, read in
place) and import each conversation as a tree of messages: every branch (edits and
regenerations), the active branch as the conversation's head, titles, times, models and
typed content parts; what has no place in the store is kept in metadata under
``source``. Importing the same export again changes nothing; ``update=True`` replaces the
conversations whose export changed. See the format modules for what maps to what.
"""

from __future__ import annotations

from pathlib import Path

from convstore.errors import InvalidInputError
from convstore.importers import chatgpt, claude
from convstore.importers.run import Format, ImportReport, Progress, import_export
from convstore.store import ConversationStore

FORMATS = {
    chatgpt.FORMAT: Format(chatgpt.FORMAT, chatgpt.parse_conversation, chatgpt.conversation_label),
    claude.FORMAT: Format(claude.FORMAT, claude.parse_conversation, claude.conversation_label),
}


def import_chatgpt(
    store: ConversationStore,
    path: str | Path,
    *,
    update: bool = False,
    skip_broken: bool = False,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import a ChatGPT data export (conversations.json or the export's zip).

    Each conversation is imported whole or not at all. A broken one raises
    InvalidInputError naming the conversation and the field, the ones before it staying
    imported; with ``skip_broken`` it is listed in the report and the import goes on.
    ``on_progress`` is called with (bytes read, bytes in all).
    """
    return import_export(
        store,
        path,
        FORMATS[chatgpt.FORMAT],
        update=update,
        skip_broken=skip_broken,
        on_progress=on_progress,
    )


def import_claude(
    store: ConversationStore,
    path: str | Path,
    *,
    update: bool = False,
    skip_broken: bool = False,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import a Claude data export (conversations.json or the export's zip); as
    :func:`import_chatgpt` does."""
    return import_export(
        store,
        path,
        FORMATS[claude.FORMAT],
        update=update,
        skip_broken=skip_broken,
        on_progress=on_progress,
    )


def import_format(
    store: ConversationStore,
    path: str | Path,
    name: str,
    *,
    update: bool = False,
    skip_broken: bool = False,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import an export of the format called ``name`` ("chatgpt" or "claude")."""
    kind = FORMATS.get(name)
    if kind is None:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}; got {name!r}")
    return import_export(
        store, path, kind, update=update, skip_broken=skip_broken, on_progress=on_progress
    )


__all__ = [
    "FORMATS",
    "ImportReport",
    "Progress",
    "import_chatgpt",
    "import_claude",
    "import_format",
]
