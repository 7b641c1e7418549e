"""The ``convstore`` command: look at and try out a store from the shell."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.json import JSON
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

import convstore
from convstore import archive, importers
from convstore.accounts import Accounts
from convstore.backup import BackupManager, backup_dir_of, backups_for
from convstore.errors import (
    ConfigurationError,
    ConversationManagerError,
    DataIntegrityError,
    InvalidInputError,
    StorageError,
)
from convstore.models import Conversation, Message
from convstore.search.embedding import embedder_named
from convstore.store import ConversationStore
from convstore.transfer import copy_store

app = typer.Typer(
    help="convstore: a conversation store for LLM agents and chat applications.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Store URL (default: $CONVSTORE_URL, $DATABASE_URL or sqlite:///./.convstore/convstore.db).",
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="Backup directory (default: beside the store, e.g. DIR/backups)."),
]
_ROLE_STYLES = {"user": "cyan", "assistant": "green", "system": "magenta", "tool": "yellow"}


EmbedderOption = Annotated[
    str | None,
    typer.Option("--embedder", help="Embedder for semantic search: hashing or minilm."),
]


@contextmanager
def _store(url: str | None, embedder: str | None = None) -> Iterator[ConversationStore]:
    """Open the store, turning convstore errors into a one-line message and exit code 2."""
    try:
        settings = {} if embedder is None else {"embedder": embedder_named(embedder)}
        with convstore.open(url, **settings) as store:  # type: ignore[arg-type]
            yield store
    except ConversationManagerError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(StorageError(str(exc)))


def _fail(exc: ConversationManagerError) -> NoReturn:
    """Print the error as one line with its code, and exit 2."""
    err_console.print(
        f"[bold red]error[/] [{exc.code}] {exc.message}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(2) from None


@contextmanager
def _progress(
    description: str, *, in_bytes: bool = False
) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar of items (or bytes) done / total (None: not known), drawn only on a
    terminal."""
    done = DownloadColumn() if in_bytes else MofNCompleteColumn()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        done,
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _version(value: bool) -> None:
    if value:
        console.print(f"convstore {convstore.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Conversation store CLI."""


@app.command()
def serve(
    url: UrlOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    read_rate: Annotated[
        str, typer.Option(envvar="CONVSTORE_READ_RATE", help="Reads per API key.")
    ] = "30/minute",
    write_rate: Annotated[
        str, typer.Option(envvar="CONVSTORE_WRITE_RATE", help="Writes per API key.")
    ] = "10/minute",
    chunk_rate: Annotated[
        str, typer.Option(envvar="CONVSTORE_CHUNK_RATE", help="Streamed chunks per API key.")
    ] = "6000/minute",
    trust_user_header: Annotated[
        bool,
        typer.Option(
            envvar="CONVSTORE_TRUST_USER_HEADER",
            help="Take the user from X-User-ID: only behind a proxy that authenticates.",
        ),
    ] = False,
    log_json: Annotated[
        bool, typer.Option(envvar="CONVSTORE_LOG_JSON", help="Log JSON lines.")
    ] = False,
    demo_user: Annotated[
        bool, typer.Option(help="On a store without users, create user 'demo' and print its key.")
    ] = False,
    heartbeat: Annotated[
        float, typer.Option(help="Seconds between heartbeats on idle event streams.")
    ] = 15.0,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between looks for changes made by other processes.")
    ] = 0.5,
) -> None:
    """Serve the REST + SSE API (FastAPI under uvicorn); docs at /docs."""
    try:
        import uvicorn

        from convstore.server import Rate, ServerSettings, create_app
        from convstore.server.observability import configure_logging
    except ImportError as exc:
        _fail(
            ConfigurationError(
                f"convstore serve needs the server extra ({exc.name} is missing): "
                "pip install 'convstore[server]'"
            )
        )
    try:
        settings = ServerSettings(
            read_rate=Rate.parse(read_rate),
            write_rate=Rate.parse(write_rate),
            chunk_rate=Rate.parse(chunk_rate),
            trust_user_header=trust_user_header,
            log_json=log_json,
            heartbeat_seconds=heartbeat,
            poll_interval=poll_interval,
        )
    except ConversationManagerError as exc:
        _fail(exc)
    configure_logging(as_json=log_json)
    with _store(url) as store:
        if demo_user and not Accounts(store).list_users():
            _, key = Accounts(store).add_user("demo", user_id="demo")
            console.print("created user [bold]demo[/], whose API key (shown once) is:")
            console.print(key, highlight=False, soft_wrap=True)
        address = f"http://{host}:{port}"
        console.print(
            f"convstore serving {archive.redact_url(store.url)} at {address} "
            f"(API docs: {address}/docs)",
            highlight=False,
            soft_wrap=True,
        )
        uvicorn.run(
            create_app(store, settings), host=host, port=port, log_config=None, access_log=False
        )


users_app = typer.Typer(help="Users of the REST API and their API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: str,
    user_id: Annotated[
        str | None, typer.Option("--id", help="The user's id (default: new).")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Add a user and print their first API key (shown only this once)."""
    with _store(url) as store:
        try:
            user, key = Accounts(store).add_user(name, user_id=user_id)
        except ConversationManagerError as exc:
            _fail(exc)
    console.print(f"user {user.id} ({user.name})", highlight=False)
    console.print(key, highlight=False, soft_wrap=True)


@users_app.command("list")
def users_list(url: UrlOption = None) -> None:
    """List the users."""
    with _store(url) as store:
        users = Accounts(store).list_users()
    table = Table("id", "name", "created")
    for user in users:
        table.add_row(user.id, user.name, _when(user.created_at))
    console.print(table)


@users_app.command("key")
def users_key(user_id: str, url: UrlOption = None) -> None:
    """Issue another API key for a user (shown only this once)."""
    with _store(url) as store:
        try:
            key = Accounts(store).issue_key(user_id)
        except ConversationManagerError as exc:
            _fail(exc)
    console.print(key, highlight=False, soft_wrap=True)


@users_app.command("revoke")
def users_revoke(key: str, url: UrlOption = None) -> None:
    """Revoke an API key (given whole, or by its id)."""
    with _store(url) as store:
        try:
            revoked = Accounts(store).revoke_key(key)
        except ConversationManagerError as exc:
            _fail(exc)
    if not revoked:
        _fail(InvalidInputError("there is no such key"))
    console.print("revoked")


@app.command()
def demo(url: UrlOption = None) -> None:
    """Create a conversation, append, edit and search messages, and print the result."""
    with _store(url) as store:
        chat = store.create_conversation(
            "代码重构讨论",
            description="关于 AutoCoder 架构重构的讨论",
            metadata={"project": "demo"},
        )
        store.append_message(chat.id, "user", "请帮我重构这段代码")
        reply = store.append_message(
            chat.id,
            "assistant",
            {
                "type": "code_suggestion",
                "language": "python",
                "code": "def total(items):\n    return sum(item.price for item in items)",
                "explanation": "用生成器表达式代替手写循环，更短也更清楚。",
            },
            usage={"prompt_tokens": 42, "completion_tokens": 96, "model": "demo-model"},
        )
        suggestion = reply.content if isinstance(reply.content, dict) else {}
        store.update_message(
            chat.id,
            reply.id,
            content={**suggestion, "explanation": "生成器表达式省掉了临时列表，意图一目了然。"},
            metadata={"edited": True},
        )
        hits = store.search_conversations("重构")
        console.print(
            _conversation_panel(store.get_conversation(chat.id), store.get_messages(chat.id))
        )
        console.print(
            f"search [bold]'重构'[/] found {len(hits)} conversation(s); "
            f"the store at [bold]{store.url}[/] holds {store.count_conversations()} "
            f"conversation(s) and {store.count_messages()} message(s)."
        )


@app.command("list")
def list_(
    url: UrlOption = None,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 20,
    offset: Annotated[int, typer.Option(help="How many to skip.")] = 0,
) -> None:
    """List conversations, most recently updated first."""
    with _store(url) as store:
        found = store.list_conversations(limit=limit, offset=offset)
        total = store.count_conversations()
    table = Table(title=f"{total} conversation(s)")
    for column in ("id", "name", "messages", "updated"):
        table.add_column(column)
    for conversation in found:
        table.add_row(
            conversation.id,
            conversation.name,
            str(conversation.message_count),
            _when(conversation.updated_at),
        )
    console.print(table)


@app.command()
def show(
    conversation_id: str,
    url: UrlOption = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest N messages.")] = None,
) -> None:
    """Print one conversation and its messages."""
    with _store(url) as store:
        conversation = store.get_conversation(conversation_id)
        if conversation is None:
            err_console.print(f"[bold red]error[/] no conversation {conversation_id!r}")
            raise typer.Exit(1)
        if limit is None:
            messages = store.get_messages(conversation_id)
        else:
            messages = store.get_messages(conversation_id, limit=limit, newest_first=True)[::-1]
    console.print(_conversation_panel(conversation, messages))


@app.command()
def search(
    query: str,
    url: UrlOption = None,
    conversation_id: Annotated[
        str | None, typer.Option("--conversation", help="Search only this conversation.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many messages to show.")] = 20,
    mode: Annotated[
        str, typer.Option(help="text (words), semantic (meaning) or hybrid (both).")
    ] = "text",
    embedder: EmbedderOption = None,
) -> None:
    """Find messages matching QUERY: words, "phrases", -excluded, prefix*."""
    with _store(url, embedder) as store:
        hits = store.search(
            query,
            mode=mode,  # type: ignore[arg-type]
            conversation_id=conversation_id,
            limit=limit,
        ).hits
    for hit in hits:
        assert hit.message is not None
        title = f"#{hit.message.seq} {hit.message.role.value} in {hit.conversation_id}"
        body = Text(hit.snippet.text)
        for start, end in hit.snippet.highlights:
            body.stylize("bold reverse", start, end)
        console.print(Panel(body, title=title, title_align="left", subtitle=f"{hit.score:.2f}"))
    console.print(f"{len(hits)} message(s) found.")


@app.command()
def embed(
    url: UrlOption = None,
    embedder: Annotated[
        str, typer.Option("--embedder", help="Embedder to compute vectors with: hashing or minilm.")
    ] = "hashing",
    batch_size: Annotated[int, typer.Option(help="Messages embedded per batch.")] = 64,
) -> None:
    """Compute the vectors that messages lack, for semantic and hybrid search."""
    with _store(url, embedder) as store, _progress("embedding") as progress:
        added = store.embed_missing(
            batch_size=batch_size, on_progress=lambda done: progress(done, None)
        )
    console.print(f"embedded {added} message(s) with {embedder}", highlight=False)


@app.command()
def health(url: UrlOption = None) -> None:
    """Print the store's health report as JSON; exit 1 if it is unhealthy."""
    with _store(url) as store:
        report = store.health_check()
        report["integrity_problems"] = store.check_integrity()
        directory = backup_dir_of(store)
        if directory is not None:
            report["last_backup"] = BackupManager(store, directory).last_backup_time()
    console.print(JSON(json.dumps(report)))
    if report["status"] != "healthy" or report["integrity_problems"]:
        raise typer.Exit(1)


@app.command()
def migrate(
    source: Annotated[str, typer.Argument(help="URL of the store to copy from.")],
    target: Annotated[str, typer.Argument(help="URL of the store to copy into.")],
) -> None:
    """Copy a whole store to another backend, verified by checksums; run again to resume."""
    with (
        _store(source) as origin,
        _store(target) as destination,
        _progress("copying") as progress,
    ):
        report = copy_store(origin, destination, on_progress=progress)
    console.print(
        f"copied {report.copied} conversation(s) with {report.messages} message(s) and "
        f"{report.records} record(s), skipped {report.skipped} already there; verified, "
        f"sha256 {report.checksum}",
        highlight=False,
    )


@app.command()
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
        console.print(f"[bold red]damaged[/] {exc.message}", highlight=False, soft_wrap=True)
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
    console.print(f"[green]ok[/] {store.url}: no problems found", highlight=False)


@app.command("export")
def export_(file: Path, url: UrlOption = None) -> None:
    """Write every conversation to an archive FILE (gzipped if it ends in .gz)."""
    with _store(url) as store, _progress("exporting") as progress:
        counts = archive.export_store(store, file, on_progress=progress)
    console.print(
        f"exported {counts.conversations} conversation(s) and {counts.messages} message(s) "
        f"to {file}",
        highlight=False,
    )


class ImportFormat(StrEnum):
    """What ``convstore import`` reads."""

    ARCHIVE = "archive"
    CHATGPT = "chatgpt"
    CLAUDE = "claude"


@app.command("import")
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
        bool, typer.Option("--replace", help="Replace conversations the store already has.")
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
            _fail(InvalidInputError("--replace is for archives; exports take --update"))
        _import_export(file, url, format_.value, update, skip_broken)
        return
    if update or skip_broken:
        _fail(InvalidInputError("--update and --skip-broken are for --format chatgpt or claude"))
    with _store(url) as store, _progress("importing") as progress:
        counts = archive.import_archive(store, file, replace=replace, on_progress=progress)
    console.print(
        f"imported {counts.conversations} conversation(s) and {counts.messages} message(s)"
        + (f"; deleted {counts.deleted}" if counts.deleted else ""),
        highlight=False,
    )


def _import_export(
    file: Path, url: str | None, format_name: str, update: bool, skip_broken: bool
) -> None:
    """Import a ChatGPT or Claude export and print the summary."""
    with _store(url) as store, _progress("importing", in_bytes=True) as progress:
        report = importers.import_format(
            store, file, format_name, update=update, skip_broken=skip_broken, on_progress=progress
        )
    for line in report.summary():
        console.print(line, highlight=False, soft_wrap=True)


@app.command()
def backup(
    url: UrlOption = None,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Only what changed since the last backup.")
    ] = False,
    directory: DirOption = None,
) -> None:
    """Back up the store (full, or incremental on top of the newest backup)."""
    with _store(url) as store, _progress("backing up") as progress:
        manager = backups_for(store, directory)
        make = manager.incremental_backup if incremental else manager.full_backup
        made = manager.describe(make(on_progress=progress))
    counts = made["counts"]
    console.print(
        f"{made['kind']} backup [bold]{made['backup_id']}[/]: "
        f"{counts['conversations']} conversation(s), {counts['messages']} message(s), "
        f"{counts['deleted']} deletion(s) in {manager.directory}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def restore(backup_id: str, url: UrlOption = None, directory: DirOption = None) -> None:
    """Restore the conversations a backup recorded (replacing the current ones)."""
    with _store(url) as store, _progress("restoring") as progress:
        summary = backups_for(store, directory).restore(backup_id, on_progress=progress)
    console.print(
        f"restored {summary.restored} conversation(s) and deleted {summary.deleted} "
        f"from backup {backup_id}",
        highlight=False,
    )


@app.command()
def backups(url: UrlOption = None, directory: DirOption = None) -> None:
    """List backups, newest first."""
    with _store(url) as store:
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
        console.print(f"[bold red]lost[/] {conversation_id}: no backup holds it", highlight=False)
    return [f"{cid} from backup {backup_id}" for cid, backup_id in recovered.items()]


def _report(label: str, lines: list[str], style: str = "bold red") -> None:
    for line in lines:
        console.print(f"[{style}]{label}[/] {line}", highlight=False, soft_wrap=True)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _message_panel(message: Message, title_extra: str = "") -> Panel:
    style = _ROLE_STYLES.get(message.role.value, "white")
    body: Any = (
        Text(message.content)
        if isinstance(message.content, str)
        else JSON(json.dumps(message.content, ensure_ascii=False))
    )
    footer = []
    if message.metadata:
        footer.append(f"metadata {json.dumps(message.metadata, ensure_ascii=False)}")
    if message.usage is not None:
        footer.append(
            f"tokens {message.usage.prompt_tokens}+{message.usage.completion_tokens}"
            + (f" ({message.usage.model})" if message.usage.model else "")
        )
    if footer:
        body = Group(body, Text(" | ".join(footer), style="dim"))
    return Panel(
        body,
        title=f"#{message.seq} {message.role.value}{title_extra}",
        title_align="left",
        subtitle=_when(message.created_at),
        subtitle_align="right",
        border_style=style,
    )


def _conversation_panel(conversation: Conversation | None, messages: list[Message]) -> Panel:
    if conversation is None:  # deleted between the two reads
        return Panel("(conversation deleted)")
    header = Text.assemble(
        (conversation.name, "bold"),
        f"  {conversation.id}\n",
        (conversation.description or "", "italic"),
        f"\n{conversation.message_count} message(s), version {conversation.version}, "
        f"tokens {conversation.prompt_tokens}+{conversation.completion_tokens}",
    )
    return Panel(Group(header, *(_message_panel(m) for m in messages)), title="conversation")
