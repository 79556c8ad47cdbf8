"""Ticket payloads: workflow input/state, update inputs, projection events.

Plain Pydantic v2 models — the only shapes that travel through Temporal.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TicketStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Action(StrEnum):
    CLAIM = "claim"
    ASSIGN = "assign"
    START = "start"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    CLOSE = "close"
    CANCEL = "cancel"
    COMMENT = "comment"


class ActorRef(BaseModel):
    """Who does something: resolved by the API from the request's credentials."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str = ""
    roles: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)


class TicketFacts(BaseModel):
    """What a ticket is about: fixed at intake, shared by the workflow input and its state."""

    ticket_id: str
    ticket_type: str
    region: str
    priority: Priority
    title: str
    description: str = ""
    channel: str = "agent"
    external_ref: str | None = None
    reporter: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)


class TicketState(TicketFacts):
    """The whole state of one ticket, owned by its workflow."""

    created_by: str
    status: TicketStatus = TicketStatus.NEW
    assignee: str | None = None
    resolution: str | None = None
    comment_count: int = 0
    # Number of state changes so far; the projection's idempotency key is (ticket_id, seq).
    seq: int = 0
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None


class TicketInput(TicketFacts):
    """Input of ``TicketWorkflow.run``; also what a continue-as-new carries forward."""

    created_by: ActorRef
    created_at: datetime
    # Set on continue-as-new: the state so far.
    carried_state: TicketState | None = None
    # Continue-as-new once history holds this many events (None: when the server suggests it).
    history_limit: int | None = None


def initial_state(input: TicketInput) -> TicketState:
    """A ticket's state before its first event (used by the workflow and the API's 201 reply)."""
    facts = input.model_dump(include=set(TicketFacts.model_fields))
    return TicketState(
        **facts, created_by=input.created_by.id, created_at=input.created_at, updated_at=input.created_at
    )


class TicketResult(BaseModel):
    """Output of ``TicketWorkflow.run`` once the ticket is closed or cancelled."""

    state: TicketState


# --- update inputs: one per action; the API adds the actor to the request body ---


class ActorInput(BaseModel):
    actor: ActorRef


class ClaimInput(ActorInput):
    pass


class AssignInput(ActorInput):
    assignee: str


class StartInput(ActorInput):
    pass


class ResolveInput(ActorInput):
    resolution: str


class ReopenInput(ActorInput):
    reason: str


class CloseInput(ActorInput):
    pass


class CancelInput(ActorInput):
    reason: str


class CommentInput(ActorInput):
    text: str


# --- projection ---


class TicketEvent(BaseModel):
    """One state change, as appended to the read model's ticket_event table."""

    ticket_id: str
    seq: int
    action: str
    actor_id: str
    from_status: TicketStatus | None
    to_status: TicketStatus
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class ProjectionInput(BaseModel):
    """Input of the projection activity: the snapshot after the change and the change itself."""

    state: TicketState
    event: TicketEvent
