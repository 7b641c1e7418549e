"""AsyncConversationStore: the same API as coroutines, transactions included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import convstore
from convstore import AsyncConversationStore


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_async_round_trip(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with await AsyncConversationStore.open(f"sqlite:///{tmp_path / 'a.db'}") as store:
            chat = await store.create_conversation("async")
            results = await asyncio.gather(
                *(store.append_message(chat.id, "user", f"m{i}") for i in range(20))
            )
            assert sorted(m.seq for m in results) == list(range(1, 21))
            messages = await store.get_messages(chat.id)
            assert [m.seq for m in messages] == list(range(1, 21))
            assert (await store.get_conversation(chat.id)).message_count == 20  # type: ignore[union-attr]
            assert len(await store.search_messages("m1*")) == 11
            assert (await store.health_check())["status"] == "healthy"
            assert await store.check_integrity() == []

    run(scenario())


def test_async_transaction_commits_and_rolls_back() -> None:
    async def scenario() -> None:
        store = AsyncConversationStore(convstore.open("memory://"))
        chat = (await store.create_conversation("t")).id
        async with store.transaction(chat):
            await store.append_message(chat, "user", "kept")
            async with store.transaction(chat):
                await store.append_message(chat, "assistant", "also kept")
        with pytest.raises(RuntimeError):
            async with store.transaction(chat):
                await store.append_message(chat, "user", "lost")
                raise RuntimeError
        assert [m.content for m in await store.get_messages(chat)] == ["kept", "also kept"]
        await store.aclose()

    run(scenario())


def test_other_tasks_wait_for_a_transaction(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = AsyncConversationStore(convstore.open(f"sqlite:///{tmp_path / 't.db'}"))
        chat = (await store.create_conversation("t")).id
        order: list[str] = []

        async def in_transaction() -> None:
            async with store.transaction(chat):
                await store.append_message(chat, "user", "first")
                await asyncio.sleep(0.2)
                order.append("transaction done")

        async def outside() -> None:
            await asyncio.sleep(0.05)
            await store.append_message(chat, "user", "second")
            order.append("outside done")

        await asyncio.gather(in_transaction(), outside())
        assert order == ["transaction done", "outside done"]
        assert [m.content for m in await store.get_messages(chat)] == ["first", "second"]
        await store.aclose()

    run(scenario())
