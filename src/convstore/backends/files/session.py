"""FilesSession: one unit of work on the files backend.

A unit takes each conversation's lock as it first touches it (exclusively when writing,
until it ends), applies its changes to its own view at once, and at commit writes one
journal line per conversation and then one index entry (see ``backend`` for the layout
and the lock order).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from convstore.backends.files.index import LoadedIndex
from convstore.backends.files.journal import Mark
from convstore.backends.files.loaded import LoadedConversation, json_values
from convstore.backends.files.query import conversation_matches, message_matches
from convstore.backends.files.records import RecordsUnit
from convstore.backends.files.search import rank_conversations, rank_messages, words_containing
from convstore.errors import DataIntegrityError
from convstore.locks import FileLock
from convstore.models import Change, Chunk, Conversation, Message, MessageStatus
from convstore.queries import (
    BranchPage,
    ConversationFilter,
    ConversationQuery,
    ConversationSearch,
    MessageFilter,
    MessageSearch,
    page_of,
)

if TYPE_CHECKING:
    from convstore.backends.files.backend import FilesBackend


class FilesSession:
    """One unit of work: conversation locks as they are touched, changes kept in memory
    and written at the end (one journal line per conversation, then the index)."""

    def __init__(self, backend: FilesBackend, *, write: bool) -> None:
        self._backend = backend
        self._write = write
        self._locks: dict[str, FileLock] = {}
        self._states: dict[str, LoadedConversation | None] = {}
        self._ops: dict[str, list[dict[str, Any]]] = {}
        self._created: set[str] = set()
        self._deleted: set[str] = set()
        self._new_ids: dict[str, str] = {}
        self._gone_ids: list[str] = []
        self._changes: list[dict[str, Any]] = []
        self._records = RecordsUnit(backend, write=write)

    def __enter__(self) -> FilesSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and self._write:
                self._commit()
            elif self._write:
                self._forget_all()
        except BaseException:
            self._forget_all()
            raise
        finally:
            for lock in self._locks.values():
                lock.release()
            self._records.release()

    def _forget_all(self) -> None:
        """After a rollback the files are the truth again."""
        for conversation_id in self._states:
            self._backend.forget(conversation_id)
        self._records.forget()

    # reading ------------------------------------------------------------------------

    def _state(self, conversation_id: str) -> LoadedConversation | None:
        if conversation_id in self._states:
            return self._states[conversation_id]
        if self._write:  # held until the unit ends
            lock = self._backend.conversation_lock(conversation_id, shared=False)
            lock.acquire()
            self._locks[conversation_id] = lock
            state = self._backend.state(conversation_id)
            state = None if state is None else state.fork()  # readers keep the committed one
        else:
            with self._backend.conversation_lock(conversation_id, shared=True):
                state = self._backend.state(conversation_id)
        self._states[conversation_id] = state
        return state

    def _peek(self, conversation_id: str) -> LoadedConversation | None:
        """A conversation this unit does not hold, read under a brief shared lock."""
        if conversation_id in self._states:
            return self._states[conversation_id]
        with self._backend.conversation_lock(conversation_id, shared=True):
            return self._backend.state(conversation_id)

    def _index(self) -> LoadedIndex:
        with self._backend.index_lock(shared=True):
            return self._backend.index.load()

    def _existing(self, conversation_id: str) -> LoadedConversation:
        state = self._state(conversation_id)
        if state is None:
            raise DataIntegrityError(f"conversation {conversation_id} vanished during a write")
        return state

    def _record(self, conversation_id: str, op: dict[str, Any]) -> None:
        """Apply ``op`` to the unit's view now and journal it at commit."""
        self._existing(conversation_id).apply(op)
        if conversation_id not in self._created:
            self._ops.setdefault(conversation_id, []).append(op)

    # conversations ------------------------------------------------------------------

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        state = self._state(conversation_id)
        return None if state is None else state.conversation

    def get_stamp(self, conversation_id: str) -> tuple[float, int] | None:
        state = self._state(conversation_id)
        return (
            None if state is None else (state.conversation.created_at, state.conversation.version)
        )

    def insert_conversation(self, conversation: Conversation) -> None:
        conversation_id = conversation.id
        if self._state(conversation_id) is not None:
            raise DataIntegrityError(f"conversation {conversation_id} already exists")
        state = LoadedConversation(conversation, {}, 0, Mark(None, None, 0))
        self._states[conversation_id] = state
        self._created.add(conversation_id)
        self._deleted.discard(conversation_id)
        self._ops.pop(conversation_id, None)

    def update_conversation(self, conversation_id: str, values: Mapping[str, Any]) -> None:
        self._record(conversation_id, {"op": "update", "values": dict(values)})

    def delete_conversation(self, conversation_id: str) -> None:
        state = self._existing(conversation_id)
        self._deleted.add(conversation_id)
        self._gone_ids.extend(state.messages)
        self._states[conversation_id] = None
        self._created.discard(conversation_id)
        self._ops.pop(conversation_id, None)

    def list_conversations(self, query: ConversationQuery) -> list[Conversation]:
        found = [
            c for c in self._index().conversations.values() if conversation_matches(c, query.where)
        ]
        found.sort(key=lambda c: (getattr(c, query.order_by), c.id), reverse=query.descending)
        end = None if query.limit is None else query.offset + query.limit
        return found[query.offset : end]

    def count_conversations(self, where: ConversationFilter) -> int:
        return sum(
            1 for c in self._index().conversations.values() if conversation_matches(c, where)
        )

    def count_messages(self) -> int:
        return sum(c.message_count for c in self._index().conversations.values())

    # messages -----------------------------------------------------------------------

    def insert_messages(
        self, messages: Sequence[Message], contents_json: Sequence[str] | None = None
    ) -> None:
        conversation_id = messages[0].conversation_id
        records = [m.model_dump(mode="json") for m in messages]
        self._record(conversation_id, {"op": "messages", "records": records})
        self._new_ids.update(dict.fromkeys((m.id for m in messages), conversation_id))

    def find_message(self, message_id: str) -> Message | None:
        for state in self._states.values():
            if state is not None and message_id in state.messages:
                return state.messages[message_id]
        owner = self._new_ids.get(message_id) or self._index().message_ids.get(message_id)
        if owner is None or owner in self._deleted:
            return None
        state = self._peek(owner)
        return None if state is None else state.messages.get(message_id)

    def get_messages_by_id(self, conversation_id: str, message_ids: Sequence[str]) -> list[Message]:
        state = self._state(conversation_id)
        if state is None:
            return []
        found = [state.messages[i] for i in set(message_ids) if i in state.messages]
        return sorted(found, key=lambda m: m.seq)

    def get_branch(self, conversation_id: str, page: BranchPage) -> list[Message]:
        state = self._state(conversation_id)
        return [] if state is None else page_of(state.branch(), page)

    def set_active_branch(self, conversation_id: str, head_id: str | None) -> None:
        """Nothing to do: the files backend reads the active branch from the head."""

    def get_all_messages(self, conversation_id: str) -> list[Message]:
        state = self._state(conversation_id)
        return [] if state is None else list(state.ordered())

    def update_message(
        self, message_id: str, values: Mapping[str, Any], content_json: str | None = None
    ) -> None:
        owner = self.find_message(message_id)
        if owner is not None:
            op = {"op": "edit", "id": message_id, "values": json_values(values)}
            self._record(owner.conversation_id, op)

    def delete_messages(self, conversation_id: str, message_ids: Sequence[str]) -> None:
        self._record(conversation_id, {"op": "delete", "ids": list(message_ids)})
        self._gone_ids.extend(message_ids)

    def reparent_messages(
        self, conversation_id: str, old_parent_id: str, new_parent_id: str | None
    ) -> None:
        self._record(
            conversation_id, {"op": "reparent", "old": old_parent_id, "new": new_parent_id}
        )

    def rank_messages(self, search: MessageSearch) -> list[tuple[Message, float]]:
        return rank_messages(self._states_in(search.where), search)

    def rank_conversations(self, search: ConversationSearch) -> list[tuple[Conversation, float]]:
        listed = [
            c for c in self._index().conversations.values() if conversation_matches(c, search.where)
        ]
        in_messages: list[tuple[Message, float]] = []
        if search.in_messages:
            ids = tuple(c.id for c in listed)
            in_messages = self.rank_messages(
                MessageSearch(search.query, MessageFilter(conversation_ids=ids))
            )
        return rank_conversations(listed, search, in_messages)

    def words_containing(self, fragment: str, limit: int) -> list[str]:
        conversations = self._index().conversations.values()
        return words_containing(self._states_in(MessageFilter()), conversations, fragment, limit)

    # embeddings ---------------------------------------------------------------------

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> None:
        by_conversation: dict[str, dict[str, str]] = {}
        for message_id, vector in vectors.items():
            message = self.find_message(message_id)
            if message is not None:
                encoded = base64.b64encode(vector).decode()
                by_conversation.setdefault(message.conversation_id, {})[message_id] = encoded
        for conversation_id, encoded_vectors in by_conversation.items():
            op = {"op": "embed", "model": model, "vectors": encoded_vectors}
            self._record(conversation_id, op)

    def get_embeddings(
        self, model: str, where: MessageFilter, message_ids: Sequence[str] | None = None
    ) -> list[tuple[str, bytes]]:
        wanted = None if message_ids is None else set(message_ids)
        found: list[tuple[str, bytes]] = []
        for state in self._states_in(where):
            vectors = state.embeddings.get(model, {})
            found.extend(
                (m.id, vectors[m.id])
                for m in state.ordered()
                if m.id in vectors
                and (wanted is None or m.id in wanted)
                and message_matches(m, where)
            )
        return found

    def changes_since(self, mark: int, limit: int) -> list[Change]:
        return self._backend.index.changes_since(mark, limit)

    def nearest_embeddings(
        self, model: str, where: MessageFilter, vector: bytes, k: int
    ) -> list[tuple[str, float]] | None:
        return None  # no index of its own: the store's exact search serves

    def messages_without_embeddings(self, model: str, limit: int) -> list[Message]:
        missing: list[Message] = []
        for state in self._states_in(MessageFilter()):
            vectors = state.embeddings.get(model, {})
            missing.extend(m for m in state.ordered() if m.id not in vectors)
            if len(missing) >= limit:
                break
        return missing[:limit]

    def change_mark(self) -> int:
        return self._index().last_change

    def _states_in(self, where: MessageFilter) -> Iterator[LoadedConversation]:
        """The states of the conversations the filter's messages may be in, read briefly."""
        scope = where.conversation_ids
        if where.owner_id is not None:
            index = self._index().conversations
            scope = tuple(
                cid
                for cid in (index if scope is None else scope)
                if cid in index and index[cid].owner_id == where.owner_id
            )
        for conversation_id in sorted(self._index().conversations if scope is None else scope):
            state = self._peek(conversation_id)
            if state is not None:
                yield state

    # streamed replies ---------------------------------------------------------------

    def insert_chunks(self, conversation_id: str, chunks: Sequence[Chunk]) -> None:
        self._record(conversation_id, {"op": "chunks", "records": [c.model_dump() for c in chunks]})

    def get_chunks(
        self, conversation_id: str, message_id: str, after: int, limit: int | None
    ) -> list[Chunk]:
        state = self._state(conversation_id)
        chunks = [] if state is None else state.chunks.get(message_id, [])
        newer = [c for c in chunks if c.seq > after]
        return newer if limit is None else newer[:limit]

    def last_chunk_seq(self, conversation_id: str, message_id: str) -> int:
        state = self._state(conversation_id)
        chunks = None if state is None else state.chunks.get(message_id)
        return chunks[-1].seq if chunks else 0

    def streaming_messages(self) -> list[tuple[Message, float]]:
        found = []
        for state in self._states_in(MessageFilter()):
            for message in state.messages.values():
                if message.status is MessageStatus.STREAMING:
                    chunks = state.chunks.get(message.id)
                    found.append((message, chunks[-1].created_at if chunks else message.created_at))
        return found

    # records ------------------------------------------------------------------------

    def get_record(self, namespace: str, key: str) -> tuple[dict[str, Any], float | None] | None:
        return self._records.get(namespace, key)

    def insert_record(
        self, namespace: str, key: str, value: Mapping[str, Any], expires_at: float | None
    ) -> None:
        self._records.put(namespace, key, value, expires_at)

    def delete_record(self, namespace: str, key: str) -> bool:
        return self._records.delete(namespace, key)

    def list_records(
        self, namespace: str | None
    ) -> list[tuple[str, str, dict[str, Any], float | None]]:
        return self._records.listed(namespace)

    # change feed --------------------------------------------------------------------

    def record_change(self, conversation_id: str, kind: str, payload: Mapping[str, Any]) -> None:
        self._changes.append(
            {
                "conversation_id": conversation_id,
                "kind": kind,
                "payload": dict(payload),
                "created_at": time.time(),
            }
        )

    # commit -------------------------------------------------------------------------

    def _commit(self) -> None:
        backend = self._backend
        self._records.commit()
        entry: dict[str, Any] = {"set": {}, "drop": [], "ids": {}, "unids": []}
        for conversation_id, state in self._states.items():
            if conversation_id in self._deleted:
                backend.conversation_file(conversation_id).remove()
                backend.forget(conversation_id)
                entry["drop"].append(conversation_id)
                continue
            if state is None:
                continue
            if conversation_id in self._created:
                backend.write_new(state)
            elif self._ops.get(conversation_id):
                files = backend.conversation_file(conversation_id)
                line = {"n": state.applied + 1, "ops": self._ops[conversation_id]}
                state.mark = files.append(line, state.mark)
                state.applied += 1
                backend.maybe_compact(state)
            else:
                continue
            backend.remember(conversation_id, state)
            entry["set"][conversation_id] = backend.index.item(state)
        entry["ids"] = {m: c for m, c in self._new_ids.items() if c not in self._deleted}
        entry["unids"] = [m for m in self._gone_ids if m not in entry["ids"]]
        if not (entry["set"] or entry["drop"] or self._changes):
            return
        with backend.index_lock(shared=False):
            for conversation_id in entry["drop"]:
                backend.index.drop_changes(conversation_id)
            changes = [c for c in self._changes if c["conversation_id"] not in self._deleted]
            backend.index.update(entry, changes)
