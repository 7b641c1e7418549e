"""The conversation state machine: the states an agent conversation moves through, and
the transitions allowed between them, written once as data.

The store checks every change of state against :data:`TRANSITIONS`; an illegal one is an
:class:`~convstore.errors.InvalidStateError`. Streaming a reply moves the conversation
through ``streaming_response`` on its own (see ``ConversationStore.begin_stream``).

Some states say what the conversation waits for: their details (:data:`STATE_DETAILS`)
are stored with the state and cleared when it changes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from convstore.errors import InvalidInputError, InvalidStateError
from convstore.validation import MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH, check_metadata


class ConversationState(StrEnum):
    """Where a conversation is in its life."""

    INITIAL = "initial"  # created, nothing said yet
    ACTIVE = "active"  # in use, no turn pending
    AWAITING_USER = "awaiting_user"  # the assistant answered; the user's turn
    AWAITING_LLM = "awaiting_llm"  # a model call is pending
    PROCESSING_TOOL = "processing_tool"  # a tool call is running
    PROCESSING_WORKFLOW = "processing_workflow"  # a multi-step workflow is running
    STREAMING_RESPONSE = "streaming_response"  # an assistant reply is being streamed
    ERROR = "error"  # the last turn failed
    ARCHIVED = "archived"  # read-only until made active again


S = ConversationState
_TURN_OUTCOMES = frozenset({S.AWAITING_USER, S.ACTIVE, S.ERROR})
_WORK = frozenset({S.AWAITING_LLM, S.PROCESSING_TOOL, S.PROCESSING_WORKFLOW, S.STREAMING_RESPONSE})

TRANSITIONS: dict[ConversationState, frozenset[ConversationState]] = {
    S.INITIAL: _WORK | _TURN_OUTCOMES | {S.ARCHIVED},
    S.ACTIVE: _WORK | {S.AWAITING_USER, S.ERROR, S.ARCHIVED},
    S.AWAITING_USER: _WORK | {S.ACTIVE, S.ERROR, S.ARCHIVED},
    S.AWAITING_LLM: (_WORK - {S.AWAITING_LLM}) | _TURN_OUTCOMES,
    S.PROCESSING_TOOL: (_WORK - {S.PROCESSING_TOOL}) | _TURN_OUTCOMES,
    S.PROCESSING_WORKFLOW: (_WORK - {S.PROCESSING_WORKFLOW}) | _TURN_OUTCOMES,
    S.STREAMING_RESPONSE: (_WORK - {S.STREAMING_RESPONSE}) | _TURN_OUTCOMES,
    S.ERROR: _WORK | {S.ACTIVE, S.AWAITING_USER, S.ARCHIVED},
    S.ARCHIVED: frozenset({S.ACTIVE}),
}
"""For each state, the states it may move to. Staying in a state is always allowed."""

_BY_NAME = {state.value: state for state in ConversationState}


def parse_state(value: object) -> ConversationState:
    """``value`` as a ConversationState, or InvalidInputError naming the valid ones."""
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    names = ", ".join(_BY_NAME)
    raise InvalidInputError(f"state must be one of {names}; got {value!r}")


def check_transition(conversation_id: str, current: str, wanted: ConversationState) -> None:
    """Raise InvalidStateError unless a conversation in ``current`` may move to ``wanted``."""
    state = parse_state(current)
    if wanted != state and wanted not in TRANSITIONS[state]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[state]))
        raise InvalidStateError(
            f"conversation {conversation_id!r} is {state.value} and cannot become "
            f"{wanted.value} (allowed: {allowed})"
        )


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]


class StateDetails(BaseModel):
    """Base of the details of a state: declared fields only, checked strictly."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AwaitingLLMDetails(StateDetails):
    """A model call is pending: the provider's (or caller's) ``request_id``."""

    request_id: Name


class ProcessingToolDetails(StateDetails):
    """A tool call is running: the call's ``tool_id``, and the tool's name."""

    tool_id: Name
    tool_name: Name | None = None


class ProcessingWorkflowDetails(StateDetails):
    """A workflow is running: its ``workflow_id``."""

    workflow_id: Name


class StreamingResponseDetails(StateDetails):
    """A reply is being streamed: the streaming ``message_id`` and the chunk position
    (``sequence``) when the state was set; its chunks carry the live position."""

    message_id: Name
    sequence: Annotated[int, Field(ge=0)]


class ErrorDetails(StateDetails):
    """The last turn failed: the ``error`` message, and a stable ``code`` if known."""

    error: Annotated[str, Field(max_length=MAX_DESCRIPTION_LENGTH)]
    code: Name | None = None


STATE_DETAILS: dict[ConversationState, type[StateDetails]] = {
    S.AWAITING_LLM: AwaitingLLMDetails,
    S.PROCESSING_TOOL: ProcessingToolDetails,
    S.PROCESSING_WORKFLOW: ProcessingWorkflowDetails,
    S.STREAMING_RESPONSE: StreamingResponseDetails,
    S.ERROR: ErrorDetails,
}
"""The details each state may carry; the states not listed carry none."""


def check_details(state: ConversationState, details: object) -> dict[str, Any]:
    """The details of ``state`` as they will be stored (fields left None dropped), or
    InvalidInputError naming the field that is wrong. None (or {}) means none."""
    values = check_metadata(details, "details")
    if not values:
        return {}
    model = STATE_DETAILS.get(state)
    if model is None:
        raise InvalidInputError(f"state {state.value} takes no details; got {sorted(values)}")
    try:
        checked = model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"details.{'.'.join(map(str, error['loc']))}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        fields = ", ".join(model.model_fields)
        raise InvalidInputError(
            f"wrong details for state {state.value} (its fields: {fields}): {problems}"
        ) from None
    return checked.model_dump(exclude_none=True)
