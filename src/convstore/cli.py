"""The ``convstore`` command: look at and try out a store from the shell."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.json import JSON
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

import convstore
from convstore import archive, cli_data
from convstore.accounts import Accounts
from convstore.backup import BackupManager, backup_dir_of
from convstore.cli_common import (
    CommandGroup,
    EmbedderOption,
    UrlOption,
    console,
    when,
)
from convstore.cli_common import fail as _fail
from convstore.cli_common import open_store as _store
from convstore.cli_common import progress as _progress
from convstore.errors import (
    ConfigurationError,
    ConversationManagerError,
    ConversationNotFoundError,
    InvalidInputError,
)
from convstore.models import Conversation, Message

app = typer.Typer(
    cls=CommandGroup,
    help="convstore: a conversation store for LLM agents and chat applications.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_ROLE_STYLES = {"user": "cyan", "assistant": "green", "system": "magenta", "tool": "yellow"}


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
        str | None,
        typer.Option(
            envvar="CONVSTORE_READ_RATE",
            help="Reads per API key (default 30/minute; 1000/minute with --demo-user).",
        ),
    ] = None,
    write_rate: Annotated[
        str | None,
        typer.Option(
            envvar="CONVSTORE_WRITE_RATE",
            help="Writes per API key (default 10/minute; 1000/minute with --demo-user).",
        ),
    ] = None,
    rate_limit: Annotated[
        int | None,
        typer.Option(
            envvar="CONVSTORE_RATE_LIMIT",
            help="Writes per minute per API key, 0 for no limit (instead of --write-rate).",
        ),
    ] = None,
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
        bool,
        typer.Option(
            help="On a store without users, create the admin 'demo' and print its key; "
            "generous rate limits."
        ),
    ] = False,
    public_metrics: Annotated[
        bool,
        typer.Option(
            envvar="CONVSTORE_PUBLIC_METRICS",
            help="Show /metrics and the /health details to everyone, not only to admins.",
        ),
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
        from convstore.server.settings import serve_rates
    except ImportError as exc:
        _fail(
            ConfigurationError(
                f"convstore serve needs the server extra ({exc.name} is missing): "
                "pip install 'convstore[server]'"
            )
        )
    try:
        reads, writes = serve_rates(read_rate, write_rate, rate_limit, demo=demo_user)
        settings = ServerSettings(
            read_rate=reads,
            write_rate=writes,
            chunk_rate=Rate.parse(chunk_rate),
            trust_user_header=trust_user_header,
            public_metrics=public_metrics,
            log_json=log_json,
            heartbeat_seconds=heartbeat,
            poll_interval=poll_interval,
        )
    except ConversationManagerError as exc:
        _fail(exc)
    configure_logging(as_json=log_json)
    with _store(url) as store:
        if demo_user and not Accounts(store).list_users():
            _, key = Accounts(store).add_user("demo", user_id="demo", admin=True)
            console.print(
                Text.assemble(
                    "created user ", ("demo", "bold"), " (an admin), whose API key (shown once) is:"
                )
            )
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
    admin: Annotated[
        bool, typer.Option("--admin", help="A server admin: may read /metrics and /health.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Add a user and print their first API key (shown only this once)."""
    with _store(url) as store:
        try:
            user, key = Accounts(store).add_user(name, user_id=user_id, admin=admin)
        except ConversationManagerError as exc:
            _fail(exc)
    role = ", server admin" if user.is_admin else ""
    console.print(f"user {user.id} ({user.name}{role})", highlight=False)
    console.print(key, highlight=False, soft_wrap=True)


@users_app.command("list")
def users_list(url: UrlOption = None) -> None:
    """List the users."""
    with _store(url) as store:
        users = Accounts(store).list_users()
    table = Table("id", "name", "created")
    for user in users:
        table.add_row(user.id, user.name, when(user.created_at))
    console.print(table)


@users_app.command("key")
def users_key(
    user: Annotated[str, typer.Argument(help="The user's name or id.")], url: UrlOption = None
) -> None:
    """Issue another API key for a user (shown only this once)."""
    with _store(url) as store:
        accounts = Accounts(store)
        key = accounts.issue_key(accounts.find_user(user).id)
    console.print(key, highlight=False, soft_wrap=True)


@users_app.command("revoke")
def users_revoke(key: str, url: UrlOption = None) -> None:
    """Revoke an API key (given whole, or by its id)."""
    with _store(url) as store:
        revoked = Accounts(store).revoke_key(key)
    if not revoked:
        raise InvalidInputError("there is no such key")
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
            Text.assemble(
                "search ",
                ("'重构'", "bold"),
                f" found {len(hits)} conversation(s); the store at ",
                (store.url, "bold"),
                f" holds {store.count_conversations()} conversation(s) and "
                f"{store.count_messages()} message(s).",
            )
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
            when(conversation.updated_at),
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
            raise ConversationNotFoundError(conversation_id)
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
        console.print(
            Panel(body, title=Text(title), title_align="left", subtitle=f"{hit.score:.2f}")
        )
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
    with _store(url, embedder) as store, _progress("embedding") as report_progress:
        added = store.embed_missing(
            batch_size=batch_size, on_progress=lambda done: report_progress(done, None)
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
        title=Text(f"#{message.seq} {message.role.value}{title_extra}"),
        title_align="left",
        subtitle=when(message.created_at),
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


cli_data.register(app)
