"""The public names: what ``import convstore`` offers, and the async store's parity."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect

import convstore
from convstore import AsyncConversationStore, ConversationStore, NewMessage

PUBLIC_NAMES = {
    "AsyncConversationStore",
    "Chunk",
    "ConcurrencyError",
    "ConfigurationError",
    "Conversation",
    "ConversationManagerConfig",
    "ConversationManagerError",
    "ConversationNotFoundError",
    "ConversationState",
    "ConversationStore",
    "DataIntegrityError",
    "InvalidInputError",
    "InvalidStateError",
    "LockTimeoutError",
    "Message",
    "MessageNotFoundError",
    "MessageStatus",
    "NewMessage",
    "PersistConversationManager",
    "Role",
    "StorageError",
    "Usage",
    "open",
}
# Names of ConversationStore that the async store offers under another form.
ASYNC_FORMS = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_package_exports_exactly_its_public_names() -> None:
    assert set(convstore.__all__) == PUBLIC_NAMES
    for name in PUBLIC_NAMES:
        assert getattr(convstore, name) is not None


def test_open_is_the_store_opener() -> None:
    with convstore.open("memory://") as store:
        assert isinstance(store, ConversationStore)
        assert store.url == "memory://"


def test_the_async_store_offers_every_public_method_of_the_store() -> None:
    missing = {
        ASYNC_FORMS.get(name, name)
        for name in public_names(ConversationStore)
        if not hasattr(AsyncConversationStore, ASYNC_FORMS.get(name, name))
    }
    assert missing == set()


def test_async_methods_are_coroutines_with_the_same_parameters() -> None:
    plain = {"for_user", "watch_writes", "in_transaction", "transaction"}
    for name in public_names(ConversationStore) - set(ASYNC_FORMS) - plain:
        sync_attr = getattr(ConversationStore, name)
        if not callable(sync_attr):
            continue  # properties: url, user_id
        async_attr = getattr(AsyncConversationStore, name)
        assert inspect.iscoroutinefunction(async_attr), name
        sync_params = list(inspect.signature(sync_attr).parameters)
        async_params = list(inspect.signature(async_attr).parameters)
        assert async_params == sync_params, name


def test_async_streaming_records_and_user_views_work() -> None:
    async def scenario() -> None:
        store = AsyncConversationStore(convstore.open("memory://"))
        alice = store.for_user("alice")
        assert alice.user_id == "alice"
        chat = await alice.create_conversation("streamed")
        begun = await alice.begin_stream(chat.id)
        await alice.append_chunks(chat.id, begun.id, ["Hel", "lo"])
        done = await alice.finalize_stream(chat.id, begun.id, usage={"completion_tokens": 2})
        assert done.content == "Hello"
        assert [c.delta for c in await alice.get_chunks(chat.id, begun.id)] == ["Hel", "lo"]
        assert await store.for_user("bob").get_conversation(chat.id) is None
        await alice.set_state(chat.id, "active")
        assert (await store.get_conversation(chat.id)).state == "active"  # type: ignore[union-attr]
        assert await store.put_record("notes", "k", {"v": 1})
        assert await store.get_record("notes", "k") == {"v": 1}
        hits = await store.search("Hello")
        assert [h.message.id for h in hits.hits if h.message] == [begun.id]
        assert await store.changes_since(0) != []
        await alice.aclose()  # a view's close leaves the store open
        assert await store.count_conversations() == 1
        await store.aclose()

    asyncio.run(scenario())


def test_every_form_of_a_new_message_has_the_same_fields() -> None:
    """NewMessage declares a new message's fields; a mapping given to append_messages and
    the REST body use the same names (``message_id`` being the REST name of ``id``)."""
    from convstore.server.schemas import MessageIn
    from convstore.store.drafts import NEW_MESSAGE_FIELDS

    declared = {f.name for f in dataclasses.fields(NewMessage)}
    assert declared | {"message_id"} == NEW_MESSAGE_FIELDS
    assert set(MessageIn.model_fields) == declared - {"id"} | {"message_id"}
    new = MessageIn(role="user", content="x", message_id="m1").to_new()
    assert (new.id, new.role, new.content) == ("m1", "user", "x")
