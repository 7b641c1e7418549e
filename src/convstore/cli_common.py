"""What every ``convstore`` command shares: consoles, options, opening a store, progress
bars and the one error path.

Both consoles print text as given: Rich markup is off, so a conversation named
``[bold]x`` or an error saying ``pip install 'convstore[minilm]'`` prints literally.
Styles are applied with :class:`rich.text.Text`, never with markup in a string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from typer.core import TyperGroup

import convstore
from convstore.errors import ConversationManagerError, StorageError
from convstore.search.embedding import embedder_named
from convstore.store import ConversationStore

ERROR_EXIT = 2
"""The exit status of a command that failed with a convstore error (as Click's usage errors)."""

console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

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
EmbedderOption = Annotated[
    str | None,
    typer.Option("--embedder", help="Embedder for semantic search: hashing or minilm."),
]


class CommandGroup(TyperGroup):
    """The command group that turns every convstore error into one line and exit 2.

    Wrapping the group's invocation catches what any command, at any depth, lets
    through, so no command needs its own handler and none can forget one. Click's
    usage errors keep their own message and exit 2; any other exception is a bug and
    keeps its traceback (exit 1).
    """

    def invoke(self, ctx: Any) -> Any:  # Click's Context (Typer's own copy in recent Typers)
        """Run the command; a convstore error is printed as ``error [CODE]: message``."""
        try:
            return super().invoke(ctx)
        except ConversationManagerError as exc:
            fail(exc)


def fail(exc: ConversationManagerError) -> NoReturn:
    """Print the error on stderr as one line, ``error [CODE]: message``, and exit 2."""
    line = Text.assemble(("error", "bold red"), f" [{exc.code}]: {exc.message}")
    err_console.print(line, highlight=False, soft_wrap=True)
    raise typer.Exit(ERROR_EXIT) from None


def styled(label: str, style: str, rest: str) -> Text:
    """``label`` in ``style`` followed by ``rest``, both taken literally."""
    return Text.assemble((label, style), rest)


@contextmanager
def open_store(url: str | None, embedder: str | None = None) -> Iterator[ConversationStore]:
    """The store at ``url`` (with the named embedder); an OS error becomes a StorageError."""
    try:
        settings = {} if embedder is None else {"embedder": embedder_named(embedder)}
        with convstore.open(url, **settings) as store:  # type: ignore[arg-type]
            yield store
    except OSError as exc:
        raise StorageError(str(exc)) from exc


@contextmanager
def progress(
    description: str, *, in_bytes: bool = False
) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar of items (or bytes) done / total (None: not known), drawn only on a
    terminal."""
    done = DownloadColumn() if in_bytes else MofNCompleteColumn()
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), done)
    with Progress(
        *columns,
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def when(epoch: float) -> str:
    """A time as local ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
