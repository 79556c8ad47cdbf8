"""Ticket payloads: workflow input/state, update inputs, projection events.

Plain Pydantic v2 models — the only shapes that travel through Temporal.
"""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.calendar import BusinessCalendar
from models.common import Priority, TicketStatus
from models.template import TemplateVersion

__all__ = ["Priority", "TicketStatus"]


class Action(StrEnum):
    CLAIM = "claim"
    ASSIGN = "assign"
    START = "start"
    COMPLETE = "complete"  # finish the current task with its form data
    RESOLVE = "resolve"  # the same, with a resolution note
    APPROVE = "approve"
    REJECT = "reject"
    REOPEN = "reopen"
    CLOSE = "close"
    CANCEL = "cancel"
    COMMENT = "comment"
    DELEGATE = "delegate"  # hand my task (or my vote) to someone else for now
    RETURN = "return"  # give a delegated task (or vote) back
    REQUEST_INFO = "request_info"  # ask the customer; the SLA pauses until they reply
    CHANGE_PRIORITY = "change_priority"  # the SLA deadlines are recomputed
    CHECK_IN = "check_in"  # the engineer arrives on site (coordinates, photos before)
    CHECK_OUT = "check_out"  # … and leaves (photos after, the customer's signature)


class NodeStatus(StrEnum):
    OPEN = "open"  # a task nobody holds yet (claimable), an approval level waiting for votes
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"  # timers, signals, activities
    DONE = "done"
    CANCELLED = "cancelled"


class ActorRef(BaseModel):
    """Who does something: resolved by the API from the request's credentials."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str = ""
    roles: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


SYSTEM = ActorRef(id="system", name="Ticketflow", roles=["system"], regions=["*"])


class Vote(BaseModel):
    actor_id: str
    decision: Literal["approve", "reject"]
    reason: str | None = None
    level: int
    at: datetime


class Visit(BaseModel):
    """One stay on site at a task: where and when the engineer checked in and out."""

    by: str
    checked_in_at: datetime
    lat: float
    lon: float
    distance_m: float | None = None  # from the site, when the ticket has one
    far: bool = False  # farther than the template's radius (recorded when the template flags)
    photos_before: list[str] = Field(default_factory=list)
    checked_out_at: datetime | None = None
    out_lat: float | None = None
    out_lon: float | None = None
    photos_after: list[str] = Field(default_factory=list)
    signature: str | None = None  # the customer's signature (an image's address)


class NodeState(BaseModel):
    """Where one node of the ticket's process stands (the latest visit of that node)."""

    id: str
    type: str
    name: str = ""
    status: NodeStatus
    branch: str | None = None  # the parallel branch it runs in
    assignee: str | None = None
    candidates: str | None = None  # who may claim: "user:x" | "role:x" | "group:x"
    backups: list[str] = Field(default_factory=list)
    # Grab pool: only these may claim, best first, until ``offer_until``; then ``fallback`` gets it.
    offers: list[str] = Field(default_factory=list)
    offer_until: datetime | None = None
    fallback: str | None = None
    delegations: dict[str, str] = Field(default_factory=dict)  # delegate → who delegated to them
    awaiting_info: str | None = None  # the question put to the customer (SLA paused meanwhile)
    info_requests: int = 0  # questions asked on this task so far (the template may cap them)
    started_at: datetime
    completed_at: datetime | None = None
    outcome: str | None = None  # approved / rejected / the next node / a reservation status …
    # approvals
    levels: list[str] = Field(default_factory=list)  # names of the levels that apply
    level: int = 0
    approvers: list[str] = Field(default_factory=list)  # actor ids for the current level
    quorum: str | None = None
    needed: int = 1
    votes: list[Vote] = Field(default_factory=list)
    due: datetime | None = None  # the current level's deadline (a level with a timeout)
    decided: dict[int, Literal["approved", "rejected"]] = Field(default_factory=dict)  # level → decided by itself
    # waits
    signals_before: int = 0  # events this run had taken when the wait opened (later ones count)
    on_site: bool = False  # a task whose template asks for check-in / check-out
    visits: list[Visit] = Field(default_factory=list)  # check-in / check-out on site (tasks)
    # what the node's activity answered: a reservation, the parts consumed, a statement, an action's outputs
    result: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _typed_from_result(cls, data: Any) -> Any:
        """States carried or stored before these fields existed kept them in ``result`` (and a grab
        pool as ``candidates="offer:a,b"``, the rule in ``result["pool_of"]``)."""
        if not isinstance(data, dict):
            return data
        result = dict(data.get("result") or {})
        data = {**data}
        if "pool_of" in result or str(data.get("candidates") or "").startswith("offer:"):
            offers = str(data.get("candidates") or "").removeprefix("offer:")
            data.setdefault("offers", [o for o in offers.split(",") if o])
            data["candidates"] = result.pop("pool_of", None)
        for key in ("fallback", "due", "signals_before"):
            if key in result:
                data.setdefault(key, result.pop(key))
        auto = {k: result.pop(k) for k in [k for k in result if k.startswith("auto:")]}
        if auto:
            data.setdefault("decided", {int(k.removeprefix("auto:")): v for k, v in auto.items()})
        data["result"] = result
        return data


class ContractSla(BaseModel):
    """A contract's SLA tier, resolved at intake: these targets replace the template's."""

    contract: str  # the contract number
    tier: str
    response: timedelta | None = None
    resolution: timedelta | None = None


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
    # Who it is for and on what, as intake resolved them (docs/customers.md).
    customer_id: str | None = None
    asset_id: str | None = None
    # The SLA a service contract buys: its targets replace the template's.
    contract_sla: ContractSla | None = None
    parent_id: str | None = None  # the ticket whose spawn node opened this one


class SlaClock(BaseModel):
    """One SLA target's clock (response or resolution), in business time of the region."""

    target: timedelta
    used: timedelta = timedelta(0)  # business time already spent before the running segment
    running_since: datetime | None = None  # None while paused (waiting on the customer)
    paused_since: datetime | None = None  # the running pause started then
    paused_for: timedelta = timedelta(0)  # business time spent paused in earlier pauses
    pause_spent: bool = False  # the template's max_pause is used up: waiting no longer pauses it
    due: datetime | None = None  # when the next milestone fires, if nothing changes
    milestone: int = 0  # index into the milestones (reminder, breach, escalations…)
    done_at: datetime | None = None
    breached_at: datetime | None = None
    # Who this clock's escalation levels reach beyond the region's role holders: the holder's
    # manager, their manager, and theirs (found at the breach from the people's manager links).
    chain: list[str] = Field(default_factory=list)


class ChildTicket(BaseModel):
    """A child ticket a spawn node opened."""

    node: str  # the spawn node
    ticket_type: str
    status: TicketStatus = TicketStatus.NEW  # as last heard: the child's result when it ended
    cancel_with_parent: bool = True


class SeenRequest(BaseModel):
    """An action or event the ticket took: a repeat (same request id) returns without acting again."""

    name: str  # the update: an action or "event"
    digest: str  # sha256 of the request (actor, body): the same id with another body is refused
    seq: int  # the ticket's seq once it was taken


MAX_SEEN_REQUESTS = 100  # request ids kept (and carried over continue-as-new) for de-duplication


class PersonLeft(BaseModel):
    """Signal: a person was deactivated; the ticket takes back the work they hold."""

    person_id: str
    reason: str = "deactivated"


class EarlyEvent(BaseModel):
    """An event that came while no wait was waiting for it."""

    name: str
    at: datetime


class SlaState(BaseModel):
    clocks: dict[str, SlaClock] = Field(default_factory=dict)  # "response" | "resolution"
    breached: bool = False
    escalation: str | None = None


class TicketState(TicketFacts):
    """The whole state of one ticket, owned by its workflow."""

    template_key: str = ""
    template_version: int = 0
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
    # The process: active node ids, each node's latest state, the path taken.
    active: list[str] = Field(default_factory=list)
    nodes: dict[str, NodeState] = Field(default_factory=dict)
    path: list[str] = Field(default_factory=list)
    cursor: str | None = None  # the top-level node being run (resumed after continue-as-new)
    branches: dict[str, dict[str, str]] = Field(default_factory=dict)  # parallel id → branch → node
    sla: SlaState = Field(default_factory=SlaState)
    # Wall-clock seconds spent in each status so far (the current one counts from status_since).
    time_in_status: dict[str, float] = Field(default_factory=dict)
    status_since: datetime | None = None
    # Events no wait node was waiting for when they came: the next wait for one takes it, if
    # the event is no older than that wait's ``early_window``.
    unclaimed_events: list[EarlyEvent] = Field(default_factory=list)
    # reserve_parts nodes holding stock: released (in reverse) if the ticket is cancelled.
    reservations: list[str] = Field(default_factory=list)
    # People who left (deactivated) whose work here is still to be taken back: kept in the
    # state so a departure signalled while the run hands over to the next is not lost.
    pending_departures: list[PersonLeft] = Field(default_factory=list)
    # Form fields an approval decides on, frozen from when it opens (field → approval node):
    # nothing changes them while it is pending, nor once it approved; a rejection frees them.
    frozen: dict[str, str] = Field(default_factory=dict)
    # Recent request ids (de-duplication of actions and events, kept across continue-as-new).
    requests: dict[str, SeenRequest] = Field(default_factory=dict)
    # Child tickets spawn nodes opened (id → the spawn node, its type, its last known status).
    children: dict[str, ChildTicket] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _early_events_were_names(cls, data: Any) -> Any:
        """States carried over from before events kept their arrival time: ``unclaimed_events``
        held bare names. They count as having come at the state's last change."""
        if isinstance(data, dict) and any(isinstance(e, str) for e in data.get("unclaimed_events") or []):
            at = data.get("updated_at")
            data = {
                **data,
                "unclaimed_events": [
                    {"name": e, "at": at} if isinstance(e, str) else e for e in data["unclaimed_events"]
                ],
            }
        return data


class TicketInput(TicketFacts):
    """Input of ``TicketWorkflow.run``; also what a continue-as-new carries forward."""

    created_by: ActorRef
    created_at: datetime
    template: TemplateVersion
    # The region's business calendar (holidays frozen at intake, so replays never change);
    # None means 24x7 UTC.
    calendar: BusinessCalendar | None = None
    # Set on continue-as-new: the state so far.
    carried_state: TicketState | None = None
    # Continue-as-new once history holds this many events (None: when the server suggests it).
    history_limit: int | None = None


def initial_state(input: TicketInput) -> TicketState:
    """A ticket's state before its first event (used by the workflow and the API's 201 reply)."""
    facts = input.model_dump(include=set(TicketFacts.model_fields))
    return TicketState(
        **facts,
        template_key=input.template.key,
        template_version=input.template.version,
        created_by=input.created_by.id,
        created_at=input.created_at,
        updated_at=input.created_at,
    )


class TicketResult(BaseModel):
    """Output of ``TicketWorkflow.run`` once the ticket is closed or cancelled."""

    state: TicketState


# --- update inputs: one per action; the API adds the actor to the request body ---


class Proof(BaseModel):
    """The API's signature over one request (``domain/signing.py``): the workflow refuses an
    input without it, with a wrong one, or after ``expires_at``."""

    request_id: str = Field(max_length=300)  # de-duplication: the caller's Idempotency-Key, or random
    expires_at: datetime
    key_id: str = Field(max_length=64)
    signature: str = Field(default="", max_length=128)


class ActorInput(BaseModel):
    actor: ActorRef
    # None only in inputs recorded before actions were signed (replayed histories).
    proof: Proof | None = None


# The HTTP body of each action is its input without ``actor`` and ``proof``
# (``api/routers/tickets.py`` derives it): the limits below are the API's limits too.
Reason = Annotated[str, Field(min_length=1, max_length=2_000)]
OptionalReason = Annotated[str | None, Field(max_length=2_000)]
PersonId = Annotated[str, Field(min_length=1, max_length=64)]


class NodeInput(ActorInput):
    node: str | None = Field(
        default=None, max_length=64, description="The active node to act on; needed only when several fit."
    )


class ClaimInput(NodeInput):
    pass


class AssignInput(NodeInput):
    assignee: PersonId


class StartInput(NodeInput):
    pass


class CompleteInput(NodeInput):
    fields: dict[str, Any] = Field(default_factory=dict, description="Form values this step edits.")
    resolution: str | None = Field(default=None, max_length=5_000)


class ResolveInput(CompleteInput):
    resolution: str = Field(min_length=1, max_length=5_000)  # type: ignore[assignment]


class ApproveInput(NodeInput):
    reason: OptionalReason = None


class RejectInput(NodeInput):
    reason: Reason


class DelegateInput(NodeInput):
    to: PersonId = Field(description="Who takes your task (or your vote) for now.")
    reason: OptionalReason = None


class ReturnInput(NodeInput):
    reason: OptionalReason = None


class RequestInfoInput(NodeInput):
    question: str = Field(
        min_length=1, max_length=5_000, description="Put to the customer; the SLA pauses until a customer_reply event."
    )


class ChangePriorityInput(ActorInput):
    priority: Priority
    reason: Reason


class ReopenInput(ActorInput):
    reason: Reason


class CloseInput(ActorInput):
    pass


class CancelInput(ActorInput):
    reason: Reason


FileRef = Annotated[str, Field(min_length=1, max_length=2_000, pattern=r"^(https?://|/t/|/files/)\S+$")]


class CheckInInput(NodeInput):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    photos: list[FileRef] = Field(default_factory=list, max_length=10, description="Photos before the work")
    note: str | None = Field(default=None, max_length=2_000)


class CheckOutInput(NodeInput):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    photos: list[FileRef] = Field(default_factory=list, max_length=10, description="Photos after the work")
    signature: FileRef | None = Field(default=None, description="The customer's signature (an image)")
    note: str | None = Field(default=None, max_length=2_000)


class CommentInput(ActorInput):
    text: str = Field(min_length=1, max_length=10_000)


CUSTOMER_REPLY = "customer_reply"  # the signal that answers a request_info


class EventInput(ActorInput):
    """An event (the ``send_event`` update): customer replied, ERP status changed, …; the
    template declares who may send it and which fields it may set."""

    name: str = Field(
        min_length=1,
        max_length=64,
        examples=["customer_reply"],
        description="An event the ticket's template declares (422 lists them otherwise)",
    )
    fields: dict[str, Any] = Field(default_factory=dict)
    text: str | None = Field(default=None, max_length=10_000)


class TicketSignal(BaseModel):
    """The ``event`` signal of tickets started before events were declared and signed: kept so
    their histories replay; a new run refuses it (events are the ``send_event`` update)."""

    name: str
    actor: ActorRef
    fields: dict[str, Any] = Field(default_factory=dict)
    text: str | None = None


class PersonLeftInput(BaseModel):
    """Input of ``PersonLeftWorkflow``: tell every open ticket that holds the person."""

    person_id: str
    reason: str = "deactivated"


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
    """Input of the projection activity: consecutive changes, and the state after the last one."""

    state: TicketState
    events: list[TicketEvent]
