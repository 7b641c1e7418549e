"""AsyncConversationStore: the ConversationStore API for asyncio code.

Every method awaits the synchronous store in a bounded thread pool (as aiosqlite does),
so no logic is written twice. Inside ``async with store.transaction(id)`` the calls of
that task run on one dedicated thread, the thread that holds the transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

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

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class AsyncConversationStore:
    """The same methods as ConversationStore, as coroutines."""

    def __init__(self, store: ConversationStore, max_workers: int = 8) -> None:
        self.sync = store
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="convstore")

    @classmethod
    async def open(cls, url: str | None = None, **settings: Any) -> AsyncConversationStore:
        """Open the store at ``url`` (see :func:`convstore.open`) without blocking the loop."""
        import convstore

        store = await asyncio.to_thread(convstore.open, url, **settings)
        return cls(store)

    async def _run(self, call: Callable[[], R]) -> R:
        executor = _transaction_thread.get() or self._pool
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    async def aclose(self) -> None:
        """Close the store and stop the worker threads."""
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

    create_conversation = _awaiting(ConversationStore.create_conversation)
    get_conversation = _awaiting(ConversationStore.get_conversation)
    list_conversations = _awaiting(ConversationStore.list_conversations)
    update_conversation = _awaiting(ConversationStore.update_conversation)
    delete_conversation = _awaiting(ConversationStore.delete_conversation)
    count_conversations = _awaiting(ConversationStore.count_conversations)
    count_messages = _awaiting(ConversationStore.count_messages)
    append_message = _awaiting(ConversationStore.append_message)
    append_messages = _awaiting(ConversationStore.append_messages)
    get_messages = _awaiting(ConversationStore.get_messages)
    get_message = _awaiting(ConversationStore.get_message)
    update_message = _awaiting(ConversationStore.update_message)
    delete_message = _awaiting(ConversationStore.delete_message)
    delete_message_pair = _awaiting(ConversationStore.delete_message_pair)
    search_conversations = _awaiting(ConversationStore.search_conversations)
    search_messages = _awaiting(ConversationStore.search_messages)
    health_check = _awaiting(ConversationStore.health_check)
    check_integrity = _awaiting(ConversationStore.check_integrity)
