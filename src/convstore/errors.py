"""The exception hierarchy of convstore.

Every error carries a stable, machine-readable ``code`` (used by the CLI and the REST
API) and the HTTP status a server should answer with. Catch
:class:`ConversationManagerError` to catch them all.
"""

from __future__ import annotations


class ConversationManagerError(Exception):
    """Base class of every error convstore raises on purpose."""

    code = "CONVSTORE_ERROR"
    http_status = 500

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        # the work was rolled back and trying it again may succeed (a lost connection,
        # a deadlock); the store retries such failures a few times
        self.transient = transient

    def to_dict(self) -> dict[str, str]:
        """The error as ``{"code", "message"}``, the body of an API error."""
        return {"code": self.code, "message": self.message}


class InvalidInputError(ConversationManagerError, ValueError):
    """An argument was rejected before anything was read or written."""

    code = "INVALID_INPUT"
    http_status = 422


class ConfigurationError(InvalidInputError):
    """A configuration value or store URL is invalid."""

    code = "INVALID_CONFIG"


class ConversationNotFoundError(ConversationManagerError, LookupError):
    """The conversation does not exist (or was deleted)."""

    code = "CONVERSATION_NOT_FOUND"
    http_status = 404

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"conversation {conversation_id!r} does not exist")
        self.conversation_id = conversation_id


class MessageNotFoundError(ConversationManagerError, LookupError):
    """The message does not exist in that conversation."""

    code = "MESSAGE_NOT_FOUND"
    http_status = 404

    def __init__(self, conversation_id: str, message_id: str) -> None:
        super().__init__(
            f"message {message_id!r} does not exist in conversation {conversation_id!r}"
        )
        self.conversation_id = conversation_id
        self.message_id = message_id


class ConcurrencyError(ConversationManagerError):
    """A write conflicts with what is stored (an id reused with other content)."""

    code = "CONCURRENCY_CONFLICT"
    http_status = 409


class InvalidStateError(ConversationManagerError):
    """The conversation's state does not allow the operation (see convstore.states)."""

    code = "INVALID_STATE"
    http_status = 409


class DataIntegrityError(ConversationManagerError):
    """Stored data is damaged or is not a convstore store."""

    code = "DATA_INTEGRITY"
    http_status = 500


class LockTimeoutError(ConversationManagerError, TimeoutError):
    """A lock could not be acquired within ``lock_timeout`` seconds."""

    code = "LOCK_TIMEOUT"
    http_status = 503


class StorageError(ConversationManagerError):
    """The storage engine failed in a way that is not the caller's fault."""

    code = "STORAGE_ERROR"
    http_status = 503


__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "ConversationManagerError",
    "ConversationNotFoundError",
    "DataIntegrityError",
    "InvalidInputError",
    "InvalidStateError",
    "LockTimeoutError",
    "MessageNotFoundError",
    "StorageError",
]
