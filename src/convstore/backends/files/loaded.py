"""What the files backend holds in memory: a conversation or the records as their files
say up to a mark, built from a snapshot document and the journal entries after it.

The names say "loaded" so they do not read like ``convstore.states`` (the conversation
state machine): these are copies of files, changed by journal operations.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convstore.backends.files.journal import JournaledFile, Loaded, Mark
from convstore.errors import DataIntegrityError
from convstore.models import Chunk, Conversation, Message, MessageStatus, Role, Usage
from convstore.search.text import index_text
from convstore.validation import text_values

FORMAT_VERSION = 1
MIN_COMPACT_BYTES = 64 * 1024


def compaction_due(files: JournaledFile) -> bool:
    """Whether the journal outgrew its snapshot, so folding it into a new snapshot keeps
    appends cheap and reading linear in the data's size."""
    snapshot_size, journal_size = files.sizes()
    return journal_size > max(snapshot_size, MIN_COMPACT_BYTES)


def check_format(document: Mapping[str, Any], kind: str, path: Path) -> None:
    """Refuse a snapshot of another kind or format version than this code writes."""
    if document.get("format") != kind:
        raise DataIntegrityError(f"{path} is not a {kind} file")
    if document.get("version") != FORMAT_VERSION:
        raise DataIntegrityError(
            f"{path} has format version {document.get('version')!r}; this convstore reads "
            f"version {FORMAT_VERSION}"
        )


# one conversation ------------------------------------------------------------------------


@dataclass
class LoadedConversation:
    """A conversation as its files say, up to ``mark``."""

    conversation: Conversation
    messages: dict[str, Message]
    applied: int
    mark: Mark
    embeddings: dict[str, dict[str, bytes]] = field(default_factory=dict)  # model -> id -> vector
    chunks: dict[str, list[Chunk]] = field(default_factory=dict)  # message id -> chunks by seq
    _ordered: list[Message] | None = None
    _branch: list[Message] | None = None
    # the search index of this conversation: each message's terms, made when first needed
    _terms: dict[str, tuple[list[str], set[str]]] = field(default_factory=dict)

    def terms(self, message: Message) -> tuple[list[str], set[str]]:
        """The message's index terms and CJK single characters (kept until it changes)."""
        found = self._terms.get(message.id)
        if found is None:
            indexed = index_text(text_values(message.content))
            found = (indexed.terms.split(), set(indexed.singles.split()))
            self._terms[message.id] = found
        return found

    def ordered(self) -> list[Message]:
        """The messages by seq (kept until the next change)."""
        if self._ordered is None:
            self._ordered = sorted(self.messages.values(), key=lambda m: m.seq)
        return self._ordered

    def branch(self) -> list[Message]:
        """The active branch: the path from a root to the head, by seq (kept until the
        next change)."""
        if self._branch is None:
            path, step = [], self.conversation.head_message_id
            while step is not None and step in self.messages:
                path.append(self.messages[step])
                step = self.messages[step].parent_id
            self._branch = path[::-1]
        return self._branch

    def fork(self) -> LoadedConversation:
        """A copy to change, leaving this one as the readers holding it see it: a state
        is never changed in place once other threads may read it (its containers are
        copied here, and apply replaces the chunk lists and vector maps it changes)."""
        return replace(
            self,
            messages=dict(self.messages),
            embeddings=dict(self.embeddings),
            chunks=dict(self.chunks),
        )

    def apply(self, op: Mapping[str, Any]) -> None:
        """Change the state as one journal operation says."""
        kind = op["op"]
        if kind not in ("chunks", "embed"):  # those leave the messages as they are
            self._ordered = self._branch = None
        if kind == "update":
            self.conversation = self.conversation.model_copy(update=op["values"])
        elif kind == "messages":
            for record in op["records"]:
                message = _message_from_json(record)
                self.messages[message.id] = message
        elif kind == "edit":
            old = self.messages[op["id"]]
            self.messages[old.id] = old.model_copy(update=_message_fields(op["values"]))
            if "content" in op["values"]:  # the old vectors and terms describe the old text
                self._drop_vectors([old.id])
                self._terms.pop(old.id, None)
        elif kind == "delete":
            for message_id in op["ids"]:
                self.messages.pop(message_id, None)
                self._terms.pop(message_id, None)
                self.chunks.pop(message_id, None)
            self._drop_vectors(op["ids"])
        elif kind == "chunks":
            for record in op["records"]:
                chunk = Chunk.model_validate(record)
                self.chunks[chunk.message_id] = [*self.chunks.get(chunk.message_id, ()), chunk]
        elif kind == "embed":
            vectors = dict(self.embeddings.get(op["model"], {}))
            vectors.update((i, base64.b64decode(v)) for i, v in op["vectors"].items())
            self.embeddings[op["model"]] = vectors
        elif kind == "reparent":
            for message in list(self.messages.values()):
                if message.parent_id == op["old"]:
                    self.messages[message.id] = message.model_copy(update={"parent_id": op["new"]})
        else:
            raise DataIntegrityError(f"unknown journal operation {kind!r}")

    def _drop_vectors(self, message_ids: Sequence[str]) -> None:
        for model, vectors in list(self.embeddings.items()):
            if any(message_id in vectors for message_id in message_ids):
                dropped = set(message_ids)
                self.embeddings[model] = {i: v for i, v in vectors.items() if i not in dropped}

    def document(self) -> dict[str, Any]:
        """The snapshot file's contents."""
        return {
            "format": "convstore.conversation",
            "version": FORMAT_VERSION,
            "applied": self.applied,
            "conversation": self.conversation.model_dump(mode="json"),
            "messages": [m.model_dump(mode="json") for m in self.ordered()],
            "embeddings": {
                model: {i: base64.b64encode(v).decode() for i, v in vectors.items()}
                for model, vectors in self.embeddings.items()
            },
            "chunks": [c.model_dump() for chunks in self.chunks.values() for c in chunks],
        }


def load_conversation(loaded: Loaded, files: JournaledFile) -> LoadedConversation:
    """The conversation that a read of its files found (which found a snapshot)."""
    document = loaded.snapshot
    assert document is not None
    check_format(document, "convstore.conversation", files.snapshot)
    try:
        state = LoadedConversation(
            Conversation.model_validate(document["conversation"]),
            {m["id"]: _message_from_json(m) for m in document["messages"]},
            int(document["applied"]),
            loaded.mark,
            {
                model: {i: base64.b64decode(v) for i, v in vectors.items()}
                for model, vectors in document.get("embeddings", {}).items()
            },
        )
        state.apply({"op": "chunks", "records": document.get("chunks", [])})
    except (KeyError, TypeError, ValueError) as exc:
        raise DataIntegrityError(f"{files.snapshot} is damaged: {exc}") from exc
    for entry in loaded.entries:
        apply_entry(state, entry, files)
    return state


def apply_entry(state: LoadedConversation, entry: Mapping[str, Any], files: JournaledFile) -> None:
    """Apply one journal line (all of a unit's operations on the conversation)."""
    try:
        for op in entry["ops"]:
            state.apply(op)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataIntegrityError(f"{files.journal} holds a bad entry: {exc!r}") from exc
    state.applied = entry["n"]


def recounted(state: LoadedConversation) -> Conversation:
    """The conversation with counters that agree with its messages."""
    ordered = state.ordered()
    head = state.conversation.head_message_id
    return state.conversation.model_copy(
        update={
            "message_count": len(ordered),
            "last_seq": max([state.conversation.last_seq, *(m.seq for m in ordered)]),
            "head_message_id": head
            if head in state.messages
            else (ordered[-1].id if ordered else None),
        }
    )


# records <-> JSON --------------------------------------------------------------------------


def _message_from_json(record: Mapping[str, Any]) -> Message:
    return Message.model_validate(record)


def _message_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Journal values of a message edit, as the model's types."""
    converted = dict(values)
    if "role" in converted:
        converted["role"] = Role(converted["role"])
    if "status" in converted:
        converted["status"] = MessageStatus(converted["status"])
    if converted.get("usage") is not None:
        converted["usage"] = Usage.model_validate(converted["usage"])
    return converted


def json_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A message edit's values as a journal line holds them (usage as JSON)."""
    return {
        k: (v.model_dump(mode="json") if isinstance(v, Usage) else v) for k, v in values.items()
    }


# the records -------------------------------------------------------------------------------


@dataclass
class LoadedRecords:
    """The records as their files say, up to ``mark``: (namespace, key) -> value, expiry."""

    items: dict[tuple[str, str], tuple[dict[str, Any], float | None]] = field(default_factory=dict)
    applied: int = 0
    mark: Mark = field(default_factory=lambda: Mark(None, None, 0))

    def apply(self, op: Mapping[str, Any]) -> None:
        """Put or delete one record as a journal operation says."""
        key = (op["namespace"], op["key"])
        if op["op"] == "put":
            self.items[key] = (op["value"], op["expires_at"])
        else:
            self.items.pop(key, None)

    def apply_entry(self, entry: Mapping[str, Any], journal: Path) -> None:
        """Apply one journal line (all of a unit's record operations)."""
        try:
            for op in entry["ops"]:
                self.apply(op)
        except (KeyError, TypeError) as exc:
            raise DataIntegrityError(f"{journal} holds a bad entry") from exc
        self.applied = entry["n"]

    def document(self) -> dict[str, Any]:
        """The snapshot file's contents."""
        return {
            "format": "convstore.records",
            "version": FORMAT_VERSION,
            "applied": self.applied,
            "records": [
                {"op": "put", "namespace": ns, "key": key, "value": value, "expires_at": expiry}
                for (ns, key), (value, expiry) in sorted(self.items.items())
            ],
        }


def load_records(loaded: Loaded, files: JournaledFile) -> LoadedRecords:
    """The records that a read of their files found (none if there are no files yet)."""
    records = LoadedRecords()
    if loaded.snapshot is not None:
        check_format(loaded.snapshot, "convstore.records", files.snapshot)
        records.apply_entry(
            {"n": loaded.snapshot["applied"], "ops": loaded.snapshot["records"]}, files.journal
        )
    for entry in loaded.entries:
        records.apply_entry(entry, files.journal)
    records.mark = loaded.mark
    return records
