"""The ``convstore`` commands that check, copy and move data: doctor, migrate, export,
import, backup, backups and restore."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

import convstore
from convstore import archive, importers
from convstore.backup import backups_for
from convstore.cli_common import (
    DirOption,
    UrlOption,
    console,
    open_store,
    progress,
    styled,
)
from convstore.errors import ConfigurationError, DataIntegrityError, InvalidInputError
from convstore.store import ConversationStore
from convstore.transfer import copy_store


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(migrate)
    app.command()(doctor)
    app.command("export")(export_)
    app.command("import")(import_)
    app.command()(backup)
    app.command()(restore)
    app.command()(backups)


def migrate(
    source: Annotated[str, typer.Argument(help="URL of the store to copy from.")],
    target: Annotated[str, typer.Argument(help="URL of the store to copy into.")],
) -> None:
    """Copy a whole store to another backend, verified by checksums; run again to resume."""
    with (
        open_store(source) as origin,
        open_store(target) as destination,
        progress("copying") as report_progress,
    ):
        report = copy_store(origin, destination, on_progress=report_progress)
    console.print(
        f"copied {report.copied} conversation(s) with {report.messages} message(s) and "
        f"{report.records} record(s), skipped {report.skipped} already there; verified, "
        f"sha256 {report.checksum}",
        highlight=False,
    )


def doctor(
    url: UrlOption = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Fix what can be fixed in place, then check again.")
    ] = False,
) -> None:
    """Check a store for damage and disagreements; exit 1 if problems remain."""
    try:
        store = convstore.open(url)
    except DataIntegrityError as exc:  # the store cannot even be opened
        console.print(styled("damaged", "bold red", f" {exc.message}"), soft_wrap=True)
        console.print("Restore it from a backup: convstore backups, then convstore restore.")
        raise typer.Exit(1) from None
    with store:
        problems = store.check_integrity()
        _report("problem", problems)
        if repair and problems:
            repaired = store.repair()
            _report("repaired", repaired.actions, style="green")
            _report("recovered", _recover(store, repaired.set_aside), style="green")
            problems = store.check_integrity()
            _report("still a problem", problems)
    if problems:
        raise typer.Exit(1)
    console.print(styled("ok", "green", f" {store.url}: no problems found"), highlight=False)


def export_(
    file: Path,
    url: UrlOption = None,
    users: Annotated[
        bool,
        typer.Option("--users/--no-users", help="Include the users and their API keys (hashed)."),
    ] = True,
) -> None:
    """Write every conversation, and the users, to an archive FILE (gzipped if it ends in .gz)."""
    with open_store(url) as store, progress("exporting") as report_progress:
        counts = archive.export_store(store, file, users=users, on_progress=report_progress)
    console.print(
        f"exported {counts.conversations} conversation(s), {counts.messages} message(s) "
        f"and {counts.records} user and key record(s) to {file}",
        highlight=False,
    )


class ImportFormat(StrEnum):
    """What ``convstore import`` reads."""

    ARCHIVE = "archive"
    CHATGPT = "chatgpt"
    CLAUDE = "claude"


def import_(
    file: Path,
    url: UrlOption = None,
    format_: Annotated[
        ImportFormat,
        typer.Option(
            "--format",
            help="archive (convstore's own), or a chatgpt or claude data export "
            "(its conversations.json or zip).",
        ),
    ] = ImportFormat.ARCHIVE,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace conversations and users the store already has."),
    ] = False,
    update: Annotated[
        bool, typer.Option("--update", help="Exports: re-import conversations changed since.")
    ] = False,
    skip_broken: Annotated[
        bool, typer.Option("--skip-broken", help="Exports: go on past broken conversations.")
    ] = False,
) -> None:
    """Import an archive FILE, checked whole before anything is written, or a ChatGPT or
    Claude data export, one conversation at a time."""
    if format_ is not ImportFormat.ARCHIVE:
        if replace:
            raise InvalidInputError("--replace is for archives; exports take --update")
        _import_export(file, url, format_.value, update, skip_broken)
        return
    if update or skip_broken:
        raise InvalidInputError("--update and --skip-broken are for --format chatgpt or claude")
    with open_store(url) as store, progress("importing") as report_progress:
        counts = archive.import_archive(store, file, replace=replace, on_progress=report_progress)
    console.print(
        f"imported {counts.conversations} conversation(s), {counts.messages} message(s) "
        f"and {counts.records} user and key record(s)"
        + (f"; deleted {counts.deleted}" if counts.deleted else ""),
        highlight=False,
    )


def _import_export(
    file: Path, url: str | None, format_name: str, update: bool, skip_broken: bool
) -> None:
    """Import a ChatGPT or Claude export and print the summary."""
    with open_store(url) as store, progress("importing", in_bytes=True) as report_progress:
        report = importers.import_format(
            store,
            file,
            format_name,
            update=update,
            skip_broken=skip_broken,
            on_progress=report_progress,
        )
    for line in report.summary():
        console.print(line, highlight=False, soft_wrap=True)


def backup(
    url: UrlOption = None,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Only what changed since the last backup.")
    ] = False,
    directory: DirOption = None,
) -> None:
    """Back up the store (full, or incremental on top of the newest backup)."""
    with open_store(url) as store, progress("backing up") as report_progress:
        manager = backups_for(store, directory)
        make = manager.incremental_backup if incremental else manager.full_backup
        made = manager.describe(make(on_progress=report_progress))
    counts = made["counts"]
    console.print(
        Text.assemble(
            f"{made['kind']} backup ",
            (made["backup_id"], "bold"),
            f": {counts['conversations']} conversation(s), {counts['messages']} message(s), "
            f"{counts['deleted']} deletion(s) in {manager.directory}",
        ),
        highlight=False,
        soft_wrap=True,
    )


def restore(backup_id: str, url: UrlOption = None, directory: DirOption = None) -> None:
    """Restore the conversations a backup recorded (replacing the current ones)."""
    with open_store(url) as store, progress("restoring") as report_progress:
        summary = backups_for(store, directory).restore(backup_id, on_progress=report_progress)
    console.print(
        f"restored {summary.restored} conversation(s) and deleted {summary.deleted} "
        f"from backup {backup_id}",
        highlight=False,
    )


def backups(url: UrlOption = None, directory: DirOption = None) -> None:
    """List backups, newest first."""
    with open_store(url) as store:
        manager = backups_for(store, directory)
        found = manager.list_backups()
    table = Table(title=f"{len(found)} backup(s) in {manager.directory}")
    table.add_column("id (UTC time)", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for column in ("convs", "msgs", "deleted", "bytes"):
        table.add_column(column, justify="right")
    for item in found:
        counts = item["counts"]
        table.add_row(
            item["backup_id"],
            item["kind"],
            str(counts["conversations"]),
            str(counts["messages"]),
            str(counts["deleted"]),
            str(item["size"]),
        )
    console.print(table)


def _recover(store: ConversationStore, conversation_ids: list[str]) -> list[str]:
    """Restore set-aside conversations from the newest backups that hold them."""
    if not conversation_ids:
        return []
    try:
        recovered = backups_for(store).recover(conversation_ids)
    except ConfigurationError:  # the store has no backup directory
        recovered = {}
    for conversation_id in sorted(set(conversation_ids) - set(recovered)):
        console.print(
            styled("lost", "bold red", f" {conversation_id}: no backup holds it"), highlight=False
        )
    return [f"{cid} from backup {backup_id}" for cid, backup_id in recovered.items()]


def _report(label: str, lines: list[str], style: str = "bold red") -> None:
    """Print each line after ``label`` in ``style``."""
    for line in lines:
        console.print(styled(label, style, f" {line}"), highlight=False, soft_wrap=True)
