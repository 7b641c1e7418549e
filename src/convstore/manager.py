"""PersistConversationManager: the seed specification's API, dicts in and dicts out.

A thin facade over ConversationStore. Messages come out as::

    {"message_id", "role", "content", "timestamp", "metadata",   # the seed's fields
     "conversation_id", "parent_id", "seq", "type", "status",
     "sender_id", "created_at", "updated_at", "usage"}

and conversations as ``{"conversation_id", "name", "description", "created_at",
"updated_at", "metadata", "version", ...}``, with ``"messages"`` (the active branch)
added by get_conversation. ``version`` counts changes to the conversation.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from convstore.backup import BackupManager, BackupScheduler, backup_dir_of, backups_for
from convstore.config import ConversationManagerConfig
from convstore.errors import ConversationManagerError, DataIntegrityError
from convstore.models import Conversation, Message
from convstore.opening import open as open_store
from convstore.queries import ConversationOrder
from convstore.store import ConversationStore

log = logging.getLogger(__name__)
T = TypeVar("T")


def message_dict(message: Message) -> dict[str, Any]:
    """A message in the seed's dict format (plus convstore's extra fields)."""
    data = message.model_dump(mode="python")
    data["message_id"] = data.pop("id")
    data["timestamp"] = message.created_at
    data["role"] = message.role.value
    data["status"] = message.status.value
    return data


def conversation_dict(conversation: Conversation) -> dict[str, Any]:
    """A conversation in the seed's dict format, without its messages."""
    data = conversation.model_dump(mode="python")
    data["conversation_id"] = data.pop("id")
    return data


class PersistConversationManager:
    """Conversations persisted in a store, through the seed specification's methods.

    With ``backup_enabled`` and a backup directory (beside the store, or
    ``backup_dir``), backups run every ``backup_interval`` seconds on a background
    thread until :meth:`close`.
    """

    def __init__(
        self,
        config: ConversationManagerConfig | None = None,
        *,
        store: ConversationStore | None = None,
    ) -> None:
        if store is not None:
            self.config = store.config
            self.store = store
        else:
            self.config = config or ConversationManagerConfig.from_env()
            self.store = open_store(config=self.config)
        logging.getLogger("convstore").setLevel(self.config.log_level.upper())  # seed 000
        directory = backup_dir_of(self.store)
        self._backups = None if directory is None else BackupManager(self.store, directory)
        self._scheduler = self._start_scheduler()

    def _start_scheduler(self) -> BackupScheduler | None:
        """Start scheduled backups if enabled; they stop on close() or when the manager
        is garbage collected, whichever comes first."""
        if self._backups is None or not self.config.backup_enabled:
            return None
        scheduler = BackupScheduler(self._backups, self.config.backup_interval)
        scheduler.start()
        weakref.finalize(self, scheduler.stop, False)
        return scheduler

    def close(self) -> None:
        """Stop scheduled backups (waiting for one under way) and close the store."""
        if self._scheduler is not None:
            self._scheduler.stop()
        self.store.close()

    def __enter__(self) -> PersistConversationManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # conversations ------------------------------------------------------------------

    def create_conversation(
        self,
        name: str,
        description: str | None = None,
        initial_messages: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
        owner_id: str | None = None,
    ) -> str:
        """Create a conversation and return its id."""
        return self.store.create_conversation(
            name,
            description=description,
            metadata=metadata,
            initial_messages=initial_messages,
            conversation_id=conversation_id,
            owner_id=owner_id,
        ).id

    def get_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """The conversation with its messages (active branch), or None."""
        return self._recovering(lambda: self._conversation_with_messages(conversation_id))

    def _conversation_with_messages(self, conversation_id: str) -> dict[str, Any] | None:
        conversation = self.store.get_conversation(conversation_id)
        if conversation is None:
            return None
        data = conversation_dict(conversation)
        data["messages"] = [message_dict(m) for m in self.store.get_messages(conversation_id)]
        return data

    def list_conversations(
        self,
        limit: int | None = None,
        offset: int = 0,
        filters: dict[str, Any] | None = None,
        *,
        order_by: ConversationOrder = "updated_at",
        descending: bool = True,
    ) -> list[dict[str, Any]]:
        """Conversations without their messages, most recently updated first."""
        found = self.store.list_conversations(
            limit=limit,
            offset=offset,
            filters=filters,
            order_by=order_by,
            descending=descending,
        )
        return [conversation_dict(c) for c in found]

    def update_conversation(
        self,
        conversation_id: str,
        name: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Change the given fields; False if the conversation does not exist."""
        updated = self.store.update_conversation(
            conversation_id, name=name, description=description, metadata=metadata
        )
        return updated is not None

    def delete_conversation(self, conversation_id: str) -> bool:
        """Delete the conversation and all its messages; False if it does not exist."""
        return self.store.delete_conversation(conversation_id)

    # messages -----------------------------------------------------------------------

    def append_message(
        self,
        conversation_id: str,
        role: str,
        content: str | dict[str, Any] | list[Any],
        metadata: dict[str, Any] | None = None,
        *,
        message_id: str | None = None,
    ) -> str:
        """Append a message and return its id (retrying with the same id is safe)."""
        return self._recovering(
            lambda: self.store.append_message(
                conversation_id, role, content, metadata=metadata, message_id=message_id
            )
        ).id

    def append_messages(self, conversation_id: str, messages: list[dict[str, Any]]) -> list[str]:
        """Append several messages, all or none, and return their ids."""
        appended = self._recovering(lambda: self.store.append_messages(conversation_id, messages))
        return [m.id for m in appended]

    def get_messages(
        self,
        conversation_id: str,
        limit: int | None = None,
        offset: int = 0,
        message_ids: list[str] | None = None,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Messages of the active branch, oldest first (see ConversationStore.get_messages)."""
        found = self._recovering(
            lambda: self.store.get_messages(
                conversation_id,
                limit=limit,
                offset=offset,
                message_ids=message_ids,
                before_seq=before_seq,
                after_seq=after_seq,
                newest_first=newest_first,
            )
        )
        return [message_dict(m) for m in found]

    def get_message(self, conversation_id: str, message_id: str) -> dict[str, Any] | None:
        """The message, or None."""
        message = self._recovering(lambda: self.store.get_message(conversation_id, message_id))
        return None if message is None else message_dict(message)

    def update_message(
        self,
        conversation_id: str,
        message_id: str,
        content: str | dict[str, Any] | list[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Edit the message; False if it does not exist."""
        updated = self.store.update_message(
            conversation_id, message_id, content=content, metadata=metadata
        )
        return updated is not None

    def delete_message(self, conversation_id: str, message_id: str) -> bool:
        """Delete one message; False if it does not exist."""
        return self.store.delete_message(conversation_id, message_id)

    def delete_message_pair(self, conversation_id: str, user_message_id: str) -> bool:
        """Delete a user message and the replies to it; False if it does not exist."""
        return bool(self.store.delete_message_pair(conversation_id, user_message_id))

    # search -------------------------------------------------------------------------

    def search_conversations(
        self,
        query: str,
        search_in_messages: bool = True,
        filters: dict[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Conversations whose name, description or messages contain ``query``."""
        found = self.store.search_conversations(
            query,
            search_in_messages=search_in_messages,
            filters=filters,
            limit=limit,
            offset=offset,
        )
        return [conversation_dict(c) for c in found]

    def search_messages(
        self,
        conversation_id: str,
        query: str,
        filters: dict[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Messages of the conversation whose text contains ``query``."""
        found = self.store.search_messages(
            query, conversation_id=conversation_id, filters=filters, limit=limit, offset=offset
        )
        return [message_dict(m) for m in found]

    # transactions and health ---------------------------------------------------------

    @contextmanager
    def transaction(self, conversation_id: str) -> Iterator[None]:
        """All calls in the block take effect together or not at all."""
        with self.store.transaction(conversation_id):
            yield

    def health_check(self) -> dict[str, Any]:
        """Status, counts, disk usage, last backup and lock figures; never raises."""
        report = self.store.health_check()
        try:
            report["last_backup"] = self.get_last_backup_time()
        except (ConversationManagerError, OSError) as exc:
            report.update(status="unhealthy", backup_error=f"{type(exc).__name__}: {exc}")
        return report

    def get_last_backup_time(self) -> float | None:
        """When the newest backup was made (epoch seconds); None if none or no backups."""
        return None if self._backups is None else self._backups.last_backup_time()

    def get_conversations_count(self, filters: Mapping[str, Any] | None = None) -> int:
        return self.store.count_conversations(filters)

    def get_total_messages_count(self) -> int:
        return self.store.count_messages()

    def get_disk_usage(self) -> int:
        """Bytes the store occupies on disk."""
        return self.store.disk_usage()

    # backups ------------------------------------------------------------------------

    def backup_conversation(self, conversation_id: str) -> str:
        """Back up one conversation and return the backup id."""
        return self._backup_manager().backup_conversation(conversation_id)

    def restore_conversation(self, conversation_id: str, backup_id: str) -> bool:
        """Replace the conversation with its state in the backup; False if the backup
        does not hold it."""
        return self._backup_manager().restore_conversation(conversation_id, backup_id)

    def list_backups(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Backups, newest first (only those holding ``conversation_id``, if given)."""
        return self._backup_manager().list_backups(conversation_id)

    def full_backup(self) -> str:
        """Back up every conversation and return the backup id."""
        return self._backup_manager().full_backup()

    def incremental_backup(self) -> str:
        """Back up what changed since the newest backup and return the backup id."""
        return self._backup_manager().incremental_backup()

    def restore_backup(self, backup_id: str) -> dict[str, int]:
        """Restore the store to a backup: ``{"restored": n, "deleted": m}``."""
        summary = self._backup_manager().restore(backup_id)
        return {"restored": summary.restored, "deleted": summary.deleted}

    def _recovering(self, call: Callable[[], T]) -> T:
        """Run ``call``; with ``auto_recover``, a conversation found damaged is repaired
        and brought back from the newest backup that holds it, and ``call`` runs again."""
        try:
            return call()
        except DataIntegrityError:
            if not self.config.auto_recover or self._backups is None:
                raise
            recovered = self._backups.recover(self.store.repair().set_aside)
            if not recovered:
                raise
            log.warning("recovered damaged conversations from backups: %s", recovered)
            return call()

    def _backup_manager(self) -> BackupManager:
        # without a backup directory, backups_for raises the ConfigurationError that says so
        return self._backups or backups_for(self.store)
