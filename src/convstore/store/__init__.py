"""ConversationStore: the native API, and every rule the backends do not know about.

Validation, ids, seq numbers, versions, timestamps, the message tree, the cache and the
change feed are decided here, once, and handed to a Backend as finished records. Each
concern is a module of this package, and :class:`ConversationStore` is all of them.
"""

from __future__ import annotations

from convstore.store.conversations import Conversations
from convstore.store.health import Health
from convstore.store.messages import Messages
from convstore.store.records import Records, StoredRecord
from convstore.store.search import Search
from convstore.store.streams import Streams
from convstore.store.transfer import Transfer, check_import


class ConversationStore(Conversations, Messages, Streams, Search, Records, Transfer, Health):
    """Conversations and their messages, kept in a Backend.

    Open one with :func:`convstore.open`. A store is safe to share between threads;
    any number of processes may open the same store at once.
    """

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["ConversationStore", "StoredRecord", "check_import"]
