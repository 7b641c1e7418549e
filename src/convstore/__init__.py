"""convstore: a conversation store for LLM agents and chat applications.

>>> import convstore
>>> store = convstore.open("memory://")
>>> chat = store.create_conversation("demo")
>>> store.append_message(chat.id, "user", "hello").seq
1
"""

from __future__ import annotations

from typing import Any

from convstore.aio import AsyncConversationStore
from convstore.backends import open_backend
from convstore.config import ConversationManagerConfig
from convstore.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConversationManagerError,
    ConversationNotFoundError,
    DataIntegrityError,
    InvalidInputError,
    InvalidStateError,
    LockTimeoutError,
    MessageNotFoundError,
    StorageError,
)
from convstore.manager import PersistConversationManager
from convstore.models import Chunk, Conversation, Message, MessageStatus, NewMessage, Role, Usage
from convstore.states import ConversationState
from convstore.store import ConversationStore

__version__ = "0.1.0"


def open(
    url: str | None = None,
    *,
    config: ConversationManagerConfig | None = None,
    **settings: Any,
) -> ConversationStore:
    """Open (creating if needed) the store at ``url``.

    Without a URL: $CONVSTORE_URL, then $DATABASE_URL, then
    ``sqlite:///./.convstore/convstore.db``. ``settings`` are ConversationManagerConfig
    fields, e.g. ``convstore.open("memory://", lock_timeout=2)``.
    """
    if config is None:
        config = ConversationManagerConfig(url=url, **settings)
    elif url is not None or settings:
        config = ConversationManagerConfig.from_dict({**config.to_dict(), "url": url, **settings})
    return ConversationStore(open_backend(config.store_url, config), config)


__all__ = [
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
]
