"""Change subscriptions: in order, without gaps, across processes, with no held connection."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import convstore
from convstore import ConversationStore, InvalidInputError, events
from convstore.events import ChangeHub
from convstore.models import Change
from tests.conftest import SHARED_BACKENDS, backend_url


@pytest.fixture
def hub(store: ConversationStore) -> Iterator[ChangeHub]:
    hub = ChangeHub(store, poll_interval=0.05)
    yield hub
    hub.close()


def collect(subscription: events.Subscription, count: int, timeout: float = 10) -> list[Change]:
    found: list[Change] = []
    for _ in range(1000):
        if len(found) >= count:
            break
        found += subscription.get(timeout / 100)
    return found


def test_changes_arrive_in_order(store: ConversationStore, hub: ChangeHub) -> None:
    with hub.subscribe() as subscription:
        chat = store.create_conversation("c").id
        store.append_message(chat, "user", "hi")
        store.set_state(chat, "awaiting_llm")
        found = collect(subscription, 4)
    kinds = [c.kind for c in found]
    assert kinds == ["conversation.created", "state.changed", "messages.appended", "state.changed"]
    assert [c.id for c in found] == sorted(c.id for c in found)
    assert all(c.conversation_id == chat for c in found)
    assert subscription.last_id == found[-1].id


def test_a_subscription_resumes_from_a_mark(store: ConversationStore, hub: ChangeHub) -> None:
    chat = store.create_conversation("c").id
    mark = store.change_mark()
    store.append_message(chat, "user", "one")
    store.append_message(chat, "user", "two")
    with hub.subscribe(after=mark) as subscription:
        found = collect(subscription, 3)
    appended = [c.payload["first_seq"] for c in found if c.kind == "messages.appended"]
    assert appended == [1, 2]
    assert store.changes_since(mark) == found


def test_a_filter_picks_the_changes(store: ConversationStore, hub: ChangeHub) -> None:
    alice, bob = store.for_user("alice"), store.for_user("bob")
    with hub.subscribe(accept=lambda c: c.payload.get("owner_id") == "alice") as subscription:
        bob.create_conversation("b")
        mine = alice.create_conversation("a").id
        found = collect(subscription, 1)
    assert [(c.kind, c.conversation_id) for c in found] == [("conversation.created", mine)]
    assert [c.conversation_id for c in alice.changes_since(0)] == [mine]


def test_a_subscriber_that_falls_behind_reads_the_feed(
    store: ConversationStore, hub: ChangeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "MAX_QUEUED", 5)
    chat = store.create_conversation("c").id
    with hub.subscribe() as subscription:
        for i in range(30):
            store.append_message(chat, "user", f"m{i}")
        found = collect(subscription, 31)
    appended = [c.payload["first_seq"] for c in found if c.kind == "messages.appended"]
    assert appended == list(range(1, 31))


def test_a_thousand_idle_subscribers_all_hear_a_change(
    store: ConversationStore, hub: ChangeHub
) -> None:
    subscriptions = [hub.subscribe() for _ in range(1000)]
    assert store.count_conversations() == 0  # idle subscribers leave the store free
    chat = store.create_conversation("c").id
    for subscription in subscriptions:
        assert [c.conversation_id for c in collect(subscription, 1)] == [chat]
        subscription.close()
    assert hub.subscribers == 0


def test_asyncio_subscribers_await_changes(store: ConversationStore, hub: ChangeHub) -> None:
    async def main() -> list[Change]:
        with hub.subscribe() as subscription:
            assert await subscription.next(timeout=0.01) == []
            writer = asyncio.get_running_loop().run_in_executor(
                None, lambda: store.create_conversation("c")
            )
            found: list[Change] = []
            while not found:
                found = await subscription.next(timeout=5)
            await writer
            return found

    assert [c.kind for c in asyncio.run(main())] == ["conversation.created"]


def test_close_stops_the_reader(store: ConversationStore) -> None:
    hub = ChangeHub(store, poll_interval=0.05)
    subscription = hub.subscribe()
    hub.close()
    assert subscription.closed
    assert not any(t.name == "convstore-changes" and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("bad", [-1, "1", 1.5, True])
def test_bad_marks_are_refused(store: ConversationStore, hub: ChangeHub, bad: object) -> None:
    with pytest.raises(InvalidInputError):
        hub.subscribe(after=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.changes_since(bad)  # type: ignore[arg-type]


WRITER = """
import sys
import convstore

with convstore.open(sys.argv[1]) as store:
    store.append_message(sys.argv[2], "user", "from another process")
"""


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_writes_of_another_process_arrive(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("c").id
        hub = ChangeHub(store, poll_interval=0.05)
        with hub.subscribe() as subscription:
            subprocess.run([sys.executable, "-c", WRITER, url, chat], check=True)
            found = collect(subscription, 2)
        hub.close()
    assert [c.kind for c in found] == ["state.changed", "messages.appended"]


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_parallel_writers_leave_no_gap_for_a_reader(backend: str, tmp_path: Path) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chats = [store.create_conversation(f"c{i}").id for i in range(4)]
        hub = ChangeHub(store, poll_interval=0.01)
        with hub.subscribe() as subscription:

            def write(chat: str) -> None:
                for i in range(25):
                    store.append_message(chat, "user", f"m{i}")

            threads = [threading.Thread(target=write, args=(chat,)) for chat in chats]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seen = collect(subscription, 104)  # 100 appends, 4 first-message state changes
        hub.close()
        assert [c.id for c in seen] == [c.id for c in store.changes_since(seen[0].id - 1)]
