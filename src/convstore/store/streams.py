"""The conversation's state and streamed replies: begin, chunks, finalize, abort.

A streamed reply is a message with status "streaming" whose content arrives as
numbered chunks; finalizing joins them into its content and moves the conversation on
through the state machine of :mod:`convstore.states`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from convstore.backends.base import Session
from convstore.errors import (
    ConcurrencyError,
    ConversationNotFoundError,
    InvalidInputError,
    InvalidStateError,
    MessageNotFoundError,
)
from convstore.ids import check_id
from convstore.models import Chunk, Conversation, Message, MessageStatus, NewMessage, Usage
from convstore.queries import check_page, check_seq
from convstore.retry import retried
from convstore.states import ConversationState, check_details, parse_state
from convstore.store.core import owned
from convstore.store.drafts import make_draft
from convstore.store.writing import MessageWriter
from convstore.validation import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TYPE_LENGTH,
    check_text,
    check_usage,
    encode_content,
    token_totals,
)

_STREAMING = ConversationState.STREAMING_RESPONSE


class Streams(MessageWriter):
    """The state and streaming methods of the store."""

    @retried
    def set_state(
        self,
        conversation_id: str,
        state: ConversationState | str,
        *,
        details: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> Conversation:
        """Move the conversation to ``state`` (see :mod:`convstore.states`) and return it.

        ``details`` say what the state waits for (see :data:`convstore.states.STATE_DETAILS`:
        ``request_id`` of awaiting_llm, ``tool_id`` of processing_tool, ...); they replace
        the previous state's, and a wrong field is an InvalidInputError. Setting the same
        state with other details updates them. An illegal transition raises
        InvalidStateError; with ``expected_version``, a conversation changed since that
        version raises ConcurrencyError instead.
        """
        check_id(conversation_id, "conversation_id")
        wanted = parse_state(state)
        checked = check_details(wanted, details)
        if expected_version is not None:
            check_seq(expected_version, "expected_version")
        with self._unit(write=True) as session:
            conversation = self._find(session, conversation_id)
            if conversation is None:
                raise ConversationNotFoundError(conversation_id)
            if expected_version is not None and conversation.version != expected_version:
                raise ConcurrencyError(
                    f"conversation {conversation_id!r} is at version {conversation.version}, "
                    f"not {expected_version}"
                )
            return self._move(session, conversation, wanted, checked)

    @retried
    def begin_stream(
        self,
        conversation_id: str,
        *,
        role: str = "assistant",
        message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        type: str = "text",
        sender_id: str | None = None,
    ) -> Message:
        """Append an empty message with status "streaming" and move the conversation to
        streaming_response; its content arrives through :meth:`append_chunks` and is
        settled by :meth:`finalize_stream` or :meth:`abort_stream`. Retrying with the
        same ``message_id`` returns the message already begun."""
        new = NewMessage(role, "", metadata, message_id, type, sender_id, None)
        draft = make_draft(new, self.config.max_message_size)
        draft = replace(draft, status=MessageStatus.STREAMING)
        check_id(conversation_id, "conversation_id")
        with self._unit(write=True) as session:
            conversation = self._writable(session, conversation_id)
            updated, (message,) = self._append(session, conversation, [draft])
            if updated.version != conversation.version:  # new, not a retry
                self._move(session, updated, _STREAMING, {"message_id": message.id, "sequence": 0})
        return message

    @retried
    def append_chunks(
        self,
        conversation_id: str,
        message_id: str,
        deltas: Sequence[str],
        *,
        first_seq: int | None = None,
    ) -> list[Chunk]:
        """Add pieces of a streaming message, numbered from ``first_seq`` (by default
        after the last stored one), and return them. Resending chunks already stored
        with the same text changes nothing; a number already used for other text is a
        ConcurrencyError, and one beyond the next free number (a gap) an
        InvalidInputError."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        texts = _chunk_texts(deltas, self.config.max_message_size)
        if first_seq is not None and (check_seq(first_seq, "first_seq") or 0) < 1:
            raise InvalidInputError("first_seq must be at least 1")
        with self._unit(write=True) as session:
            conversation = self._writable(session, conversation_id)
            message = _streaming(session, conversation_id, message_id)
            last = session.last_chunk_seq(conversation_id, message_id)
            start = last + 1 if first_seq is None else first_seq
            if start > last + 1:
                raise InvalidInputError(
                    f"chunk {start} would leave a gap: message {message_id!r} has "
                    f"{last} chunks, so the next is {last + 1}"
                )
            stored = (  # only a resend overlaps what is stored
                session.get_chunks(conversation_id, message_id, start - 1, len(texts))
                if start <= last
                else []
            )
            for chunk, text in zip(stored, texts, strict=False):
                if chunk.delta != text:
                    raise ConcurrencyError(
                        f"chunk {chunk.seq} of message {message_id!r} was stored with "
                        "other text; a retry must resend the same text"
                    )
            now = time.time()
            fresh = [
                Chunk.from_stored(
                    {"message_id": message.id, "seq": start + i, "delta": text, "created_at": now}
                )
                for i, text in enumerate(texts[len(stored) :], start=len(stored))
            ]
            if fresh:
                session.insert_chunks(conversation_id, fresh)
                payload = {"message_id": message_id, "first_seq": fresh[0].seq}
                payload["last_seq"] = fresh[-1].seq
                self._log_change(session, conversation, "chunks.appended", payload)
        return stored + fresh

    def append_chunk(
        self, conversation_id: str, message_id: str, delta: str, *, seq: int | None = None
    ) -> Chunk:
        """Add one piece of a streaming message (see :meth:`append_chunks`)."""
        return self.append_chunks(conversation_id, message_id, [delta], first_seq=seq)[0]

    @retried
    def get_chunks(
        self, conversation_id: str, message_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[Chunk]:
        """The message's chunks numbered above ``after``, in order: what a client that
        saw chunk ``after`` missed. Raises MessageNotFoundError."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        after = check_seq(after, "after") or 0
        limit, _ = check_page(limit, 0)
        with self._unit(write=False) as session:
            if self._stamp(session, conversation_id) is None:
                raise ConversationNotFoundError(conversation_id)
            if owned(session.find_message(message_id), conversation_id) is None:
                raise MessageNotFoundError(conversation_id, message_id)
            return session.get_chunks(conversation_id, message_id, after, limit)

    @retried
    def finalize_stream(
        self,
        conversation_id: str,
        message_id: str,
        *,
        finish_reason: str = "stop",
        usage: Usage | Mapping[str, Any] | None = None,
    ) -> Message:
        """Complete a streaming message: its content becomes its chunks joined, its
        usage is counted in the conversation's totals, and the conversation, if it was
        streaming_response for this message, awaits the user (the state's details
        cleared). Repeating the call returns the message."""
        finish_reason = check_text(finish_reason, "finish_reason", MAX_TYPE_LENGTH)
        checked_usage = check_usage(usage)
        return self._settle(
            conversation_id,
            message_id,
            MessageStatus.COMPLETE,
            {"finish_reason": finish_reason},
            checked_usage,
            ConversationState.AWAITING_USER,
            None,
        )

    @retried
    def abort_stream(
        self, conversation_id: str, message_id: str, *, reason: str | None = None
    ) -> Message:
        """End a streaming message as failed: it keeps the chunks received so far as its
        content, gets status "error", and the conversation, if it was
        streaming_response for this message, moves to error with the reason as its
        details. Repeating the call returns the message."""
        reason = check_text(reason, "reason", MAX_DESCRIPTION_LENGTH, optional=True)
        failure = {"error": reason or "aborted"}
        return self._settle(
            conversation_id,
            message_id,
            MessageStatus.ERROR,
            failure,
            None,
            ConversationState.ERROR,
            failure,
        )

    def fail_unfinished_streams(self, *, idle_for: float = 0.0) -> list[Message]:
        """Abort every streaming message that received nothing for ``idle_for`` seconds
        (all of them by default): replies left unfinished by a crashed writer. Run at
        start-up by ``convstore serve``; returns the messages marked error."""
        if isinstance(idle_for, bool) or not isinstance(idle_for, int | float) or idle_for < 0:
            raise InvalidInputError(f"idle_for must be a non-negative number; got {idle_for!r}")
        cutoff = time.time() - idle_for
        with self._unit(write=False) as session:
            stale = [m for m, last in session.streaming_messages() if last <= cutoff]
        failed = []
        for message in stale:
            try:
                failed.append(
                    self.abort_stream(
                        message.conversation_id,
                        message.id,
                        reason="interrupted: the stream was left unfinished",
                    )
                )
            except (ConversationNotFoundError, MessageNotFoundError):
                continue  # deleted meanwhile, or not this user's
        return failed

    def _settle(
        self,
        conversation_id: str,
        message_id: str,
        status: MessageStatus,
        note: dict[str, Any],
        usage: Usage | None,
        next_state: ConversationState,
        next_details: dict[str, Any] | None,
    ) -> Message:
        """End a stream: content from the chunks, ``status``, ``note`` added to the
        metadata, usage counted; the conversation moves on from streaming_response
        unless its details name another message (whose stream is still going on)."""
        check_id(conversation_id, "conversation_id")
        check_id(message_id, "message_id")
        with self._unit(write=True) as session:
            conversation = self._writable(session, conversation_id)
            message = owned(session.find_message(message_id), conversation_id)
            if message is not None and message.status is status:
                return message  # a repeated call
            message = _streaming(session, conversation_id, message_id)
            chunks = session.get_chunks(conversation_id, message_id, 0, None)
            content = "".join(chunk.delta for chunk in chunks)
            content_json = encode_content(content, self.config.max_message_size)
            totals = {} if usage is None else token_totals(conversation, [usage])
            changes: dict[str, Any] = {
                "content": content,
                "status": status,
                "metadata": {**message.metadata, **note},
                "updated_at": time.time(),
            }
            if usage is not None:
                changes["usage"] = usage
            session.update_message(message_id, changes, content_json)
            settled = message.model_copy(update=changes)
            if status is MessageStatus.COMPLETE:
                self._store_vectors(session, [settled], self._embed_contents([content]))
            payload = {"message_id": message_id, "status": status.value}
            conversation = self._touch(session, conversation, totals, "message.updated", payload)
            streaming = conversation.state_details.get("message_id", message_id)
            if conversation.state == _STREAMING and streaming == message_id:
                self._move(session, conversation, next_state, next_details)
        return settled


def _streaming(session: Session, conversation_id: str, message_id: str) -> Message:
    """The message, which must be in the conversation and still streaming."""
    message = owned(session.find_message(message_id), conversation_id)
    if message is None:
        raise MessageNotFoundError(conversation_id, message_id)
    if message.status is not MessageStatus.STREAMING:
        raise InvalidStateError(f"message {message_id!r} is {message.status.value}, not streaming")
    return message


def _chunk_texts(deltas: Sequence[str], max_bytes: int) -> list[str]:
    """The checked texts of chunks (a non-empty list of strings)."""
    if isinstance(deltas, str) or not isinstance(deltas, Sequence) or not deltas:
        raise InvalidInputError("deltas must be a non-empty list of strings")
    return [check_text(d, f"deltas[{i}]", max_bytes) for i, d in enumerate(deltas)]
