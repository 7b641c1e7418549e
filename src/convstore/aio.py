"""AsyncConversationStore: the ConversationStore API for asyncio code.

Every method awaits the synchronous store in a bounded thread pool (as aiosqlite does),
so no logic is written twice. Inside ``async with store.transaction(id)`` the calls of
that task run on one dedicated thread, the thread that holds the transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from convstore.config import ConversationManagerConfig
from convstore.opening import open as open_store
from convstore.store import ConversationStore

P = ParamSpec("P")
R = TypeVar("R")

_transaction_thread: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar(
    "convstore_transaction_thread", default=None
)


def _awaiting(
    method: Callable[Concatenate[ConversationStore, P], R],
) -> Callable[Concatenate[AsyncConversationStore, P], Awaitable[R]]:
    """An async method that runs ``method`` of the wrapped store in a worker thread."""

    async def call(self: AsyncConversationStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._run(partial(method, self.sync, *args, **kwargs))

    return functools.wraps(method)(call)  # name, docs and signature of the sync method


class AsyncConversationStore:
    """The same methods as ConversationStore, as coroutines."""

    def __init__(
        self,
        store: ConversationStore,
        max_workers: int = 8,
        *,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.sync = store
        self._owns_pool = pool is None
        self._pool = pool or ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="convstore"
        )

    @property
    def config(self) -> ConversationManagerConfig:
        """The settings of the store."""
        return self.sync.config

    @property
    def url(self) -> str:
        """The URL the store was opened from."""
        return self.sync.url

    @property
    def user_id(self) -> str | None:
        """The user this store acts for (see :meth:`for_user`); None for the whole store."""
        return self.sync.user_id

    def for_user(self, user_id: str) -> AsyncConversationStore:
        """This store as one user sees it (see ConversationStore.for_user); the view
        shares the worker threads, and closing it does nothing."""
        return AsyncConversationStore(self.sync.for_user(user_id), pool=self._pool)

    def watch_writes(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every write the store commits (from the writing
        thread; see ConversationStore.watch_writes)."""
        self.sync.watch_writes(callback)

    def in_transaction(self) -> bool:
        """Whether this task is inside ``async with store.transaction()``."""
        return _transaction_thread.get() is not None

    @classmethod
    async def open(cls, url: str | None = None, **settings: Any) -> AsyncConversationStore:
        """Open the store at ``url`` (see :func:`convstore.open`) without blocking the loop."""
        store = await asyncio.to_thread(open_store, url, **settings)
        return cls(store)

    async def _run(self, call: Callable[[], R]) -> R:
        executor = _transaction_thread.get() or self._pool
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    async def aclose(self) -> None:
        """Close the store and stop the worker threads."""
        if not self._owns_pool:
            return
        await self._run(self.sync.close)
        self._pool.shutdown(wait=False)

    async def __aenter__(self) -> AsyncConversationStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @asynccontextmanager
    async def transaction(self, conversation_id: str) -> AsyncIterator[None]:
        """All store calls this task makes in the block succeed together or not at all."""
        if _transaction_thread.get() is not None:
            yield
            return
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convstore-tx")
        loop = asyncio.get_running_loop()
        context = self.sync.transaction(conversation_id)
        token = _transaction_thread.set(thread)
        try:
            await loop.run_in_executor(thread, context.__enter__)
            try:
                yield
            except BaseException as exc:
                await loop.run_in_executor(
                    thread, context.__exit__, type(exc), exc, exc.__traceback__
                )
                raise
            await loop.run_in_executor(thread, context.__exit__, None, None, None)
        finally:
            _transaction_thread.reset(token)
            thread.shutdown(wait=False)

    # conversations
    create_conversation = _awaiting(ConversationStore.create_conversation)
    get_conversation = _awaiting(ConversationStore.get_conversation)
    list_conversations = _awaiting(ConversationStore.list_conversations)
    update_conversation = _awaiting(ConversationStore.update_conversation)
    delete_conversation = _awaiting(ConversationStore.delete_conversation)
    restore_conversation = _awaiting(ConversationStore.restore_conversation)
    count_conversations = _awaiting(ConversationStore.count_conversations)
    count_messages = _awaiting(ConversationStore.count_messages)
    # messages
    append_message = _awaiting(ConversationStore.append_message)
    append_messages = _awaiting(ConversationStore.append_messages)
    get_messages = _awaiting(ConversationStore.get_messages)
    get_message = _awaiting(ConversationStore.get_message)
    update_message = _awaiting(ConversationStore.update_message)
    delete_message = _awaiting(ConversationStore.delete_message)
    delete_message_pair = _awaiting(ConversationStore.delete_message_pair)
    # state and streamed replies
    set_state = _awaiting(ConversationStore.set_state)
    begin_stream = _awaiting(ConversationStore.begin_stream)
    append_chunks = _awaiting(ConversationStore.append_chunks)
    append_chunk = _awaiting(ConversationStore.append_chunk)
    get_chunks = _awaiting(ConversationStore.get_chunks)
    finalize_stream = _awaiting(ConversationStore.finalize_stream)
    abort_stream = _awaiting(ConversationStore.abort_stream)
    fail_unfinished_streams = _awaiting(ConversationStore.fail_unfinished_streams)
    # search
    search = _awaiting(ConversationStore.search)
    search_conversations = _awaiting(ConversationStore.search_conversations)
    search_messages = _awaiting(ConversationStore.search_messages)
    embed_missing = _awaiting(ConversationStore.embed_missing)
    # records
    put_record = _awaiting(ConversationStore.put_record)
    get_record = _awaiting(ConversationStore.get_record)
    list_records = _awaiting(ConversationStore.list_records)
    delete_record = _awaiting(ConversationStore.delete_record)
    export_records = _awaiting(ConversationStore.export_records)
    import_records = _awaiting(ConversationStore.import_records)
    # whole conversations and the change feed
    export_conversation = _awaiting(ConversationStore.export_conversation)
    import_conversation = _awaiting(ConversationStore.import_conversation)
    change_mark = _awaiting(ConversationStore.change_mark)
    changes_since = _awaiting(ConversationStore.changes_since)
    # health
    health_check = _awaiting(ConversationStore.health_check)
    disk_usage = _awaiting(ConversationStore.disk_usage)
    check_integrity = _awaiting(ConversationStore.check_integrity)
    repair = _awaiting(ConversationStore.repair)
