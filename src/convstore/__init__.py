"""convstore: a conversation store for LLM agents and chat applications.

>>> import convstore
>>> store = convstore.open("memory://")
>>> chat = store.create_conversation("demo")
>>> store.append_message(chat.id, "user", "hello").seq
1
"""

from __future__ import annotations

from convstore.aio import AsyncConversationStore
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
from convstore.opening import open
from convstore.states import ConversationState
from convstore.store import ConversationStore

__version__ = "0.1.0"


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
