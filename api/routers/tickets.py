"""/tickets: create, read, list, and one POST route per action (each a Temporal Update)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status
from pydantic import BaseModel

from api.deps import AppSettings, CurrentActor, DbSession, TemporalClient
from api.services import tickets as service
from models.schemas import (
    ApproveBody,
    AssignBody,
    CommentBody,
    CompleteBody,
    DelegateBody,
    EmptyBody,
    EventAccepted,
    EventBody,
    PriorityBody,
    Problem,
    ReasonBody,
    RejectBody,
    RequestInfoBody,
    ResolveBody,
    ReturnBody,
    TicketCreate,
    TicketEventPage,
    TicketOut,
    TicketPage,
)
from models.ticket import (
    Action,
    ApproveInput,
    AssignInput,
    CancelInput,
    ChangePriorityInput,
    ClaimInput,
    CloseInput,
    CommentInput,
    CompleteInput,
    DelegateInput,
    Priority,
    RejectInput,
    ReopenInput,
    RequestInfoInput,
    ResolveInput,
    ReturnInput,
    StartInput,
    TicketStatus,
)
from workflows.ticket import TicketWorkflow

router = APIRouter(prefix="/tickets", tags=["tickets"])
TicketId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    404: {"model": Problem, "description": "No such ticket in the caller's regions"},
}


@router.post(
    "",
    response_model=TicketOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": TicketOut, "description": "Repeat of an earlier request with the same key: that ticket"},
        403: {"model": Problem, "description": "Region outside the caller's scope"},
        **ERRORS,
    },
)
async def create_ticket(
    body: TicketCreate,
    response: Response,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    actor: CurrentActor,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="Repeating a request with the same key returns the same ticket."),
    ] = None,
) -> TicketOut:
    created = await service.create_ticket(session, client, settings, actor, body, idempotency_key)
    if not created.new:
        response.status_code = status.HTTP_200_OK
    return created.ticket


@router.get("", response_model=TicketPage, responses={**ERRORS, 403: {"model": Problem, "description": "?region= outside the caller's regions"}})
async def list_tickets(
    session: DbSession,
    actor: CurrentActor,
    status_: Annotated[TicketStatus | None, Query(alias="status")] = None,
    region: str | None = None,
    priority: Priority | None = None,
    assignee: str | None = None,
    ticket_type: str | None = None,
    created_from: Annotated[datetime | None, Query(description="Inclusive, ISO 8601")] = None,
    created_to: Annotated[datetime | None, Query(description="Exclusive, ISO 8601")] = None,
    sla_breached: Annotated[bool | None, Query(description="Only tickets that did (or did not) miss an SLA target")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> TicketPage:
    filters = service.TicketFilter(
        status_, region, priority, assignee, ticket_type, created_from, created_to, sla_breached
    )
    return await service.list_tickets(session, actor, filters, limit, cursor)


@router.get("/{ticket_id}", response_model=TicketOut, responses=ERRORS)
async def get_ticket(ticket_id: TicketId, session: DbSession, client: TemporalClient, actor: CurrentActor) -> TicketOut:
    return await service.get_ticket(session, client, actor, ticket_id)


# Each action: (request body, update input, the workflow's update method, what it does).
ACTIONS: dict[Action, tuple[type[BaseModel], type[BaseModel], Any, str]] = {
    Action.CLAIM: (EmptyBody, ClaimInput, TicketWorkflow.claim, "Take an open task as your own."),
    Action.ASSIGN: (AssignBody, AssignInput, TicketWorkflow.assign, "Assign, reassign or delegate a task."),
    Action.START: (EmptyBody, StartInput, TicketWorkflow.start, "Begin work on your task."),
    Action.COMPLETE: (CompleteBody, CompleteInput, TicketWorkflow.complete, "Finish your task with its form data."),
    Action.RESOLVE: (ResolveBody, ResolveInput, TicketWorkflow.resolve, "Finish your task with a resolution."),
    Action.APPROVE: (ApproveBody, ApproveInput, TicketWorkflow.approve, "Approve at your approval level."),
    Action.REJECT: (RejectBody, RejectInput, TicketWorkflow.reject, "Reject with a reason."),
    Action.REOPEN: (ReasonBody, ReopenInput, TicketWorkflow.reopen, "Send a resolved ticket back to work."),
    Action.CLOSE: (EmptyBody, CloseInput, TicketWorkflow.close, "Close a resolved ticket (final)."),
    Action.CANCEL: (ReasonBody, CancelInput, TicketWorkflow.cancel, "Cancel an open ticket (final)."),
    Action.COMMENT: (CommentBody, CommentInput, TicketWorkflow.comment, "Add a comment."),
    Action.DELEGATE: (DelegateBody, DelegateInput, TicketWorkflow.delegate, "Hand your task or vote to someone for now."),
    Action.RETURN: (ReturnBody, ReturnInput, TicketWorkflow.return_, "Give a delegated task or vote back."),
    Action.CHANGE_PRIORITY: (
        PriorityBody,
        ChangePriorityInput,
        TicketWorkflow.change_priority,
        "Change the priority; the SLA deadlines are recomputed.",
    ),
    Action.REQUEST_INFO: (
        RequestInfoBody,
        RequestInfoInput,
        TicketWorkflow.request_info,
        "Ask the customer; the SLA pauses until their customer_reply event.",
    ),
}

ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": Problem, "description": "The caller may not take this action on this ticket"},
    409: {"model": Problem, "description": "Not allowed in the ticket's current status (see allowed_actions), "
                                          "or it would change a field an approval decided on"},
    503: {"model": Problem, "description": "Temporal or the worker cannot take actions now; retry"},
    504: {"model": Problem, "description": "Not answered in time: `applied` false — it will never apply; "
                                          "true — it will complete (repeat with the same Idempotency-Key)"},
}


IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, description="Repeating a request with the same key returns its first outcome "
                                       "instead of acting twice (a key reused for another request is a 422)."),
]


def _action_endpoint(action: Action, body_model: type[BaseModel], input_model: type[BaseModel], update: Any):
    async def run(ticket_id, session, client, settings, actor, body: BaseModel | None, key: str | None) -> TicketOut:
        fields = body.model_dump() if body is not None else {}
        update_input = input_model(actor=actor, **fields)
        return await service.act(session, client, settings, actor, ticket_id, action, update, update_input, key)

    if not any(f.is_required() for f in body_model.model_fields.values()):  # the body may be left out

        async def endpoint(
            ticket_id: TicketId,
            session: DbSession,
            client: TemporalClient,
            settings: AppSettings,
            actor: CurrentActor,
            body: body_model | None = None,  # type: ignore[valid-type]
            idempotency_key: IdempotencyKey = None,
        ) -> TicketOut:
            return await run(ticket_id, session, client, settings, actor, body, idempotency_key)

    else:

        async def endpoint(  # type: ignore[misc]
            ticket_id: TicketId,
            session: DbSession,
            client: TemporalClient,
            settings: AppSettings,
            actor: CurrentActor,
            body: body_model,  # type: ignore[valid-type]
            idempotency_key: IdempotencyKey = None,
        ) -> TicketOut:
            return await run(ticket_id, session, client, settings, actor, body, idempotency_key)

    endpoint.__name__ = f"{action.value}_ticket"
    return endpoint


for _action, (_body, _input, _update, _doc) in ACTIONS.items():
    router.add_api_route(
        f"/{{ticket_id}}/actions/{_action.value}",
        _action_endpoint(_action, _body, _input, _update),
        methods=["POST"],
        response_model=TicketOut,
        responses=ACTION_ERRORS,
        summary=f"{_action.value.capitalize()}: {_doc}",
    )


@router.post(
    "/{ticket_id}/events",
    response_model=EventAccepted,
    status_code=202,
    responses={
        **ACTION_ERRORS,
        403: {"model": Problem, "description": "The caller is not one of the event's declared senders"},
        422: {"description": "An event the template does not declare, or a field it may not set"},
    },
)
async def send_event(
    ticket_id: TicketId,
    body: EventBody,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    actor: CurrentActor,
    idempotency_key: IdempotencyKey = None,
) -> EventAccepted:
    """An event the ticket's template declares (customer confirmed, ERP status changed…), from
    one of its declared senders, setting only its declared fields. 202 once the workflow took it."""
    await service.send_event(
        session, client, settings, actor, ticket_id, body.name, body.fields, body.text, idempotency_key
    )
    return EventAccepted()


@router.get("/{ticket_id}/events", response_model=TicketEventPage, responses=ERRORS)
async def list_events(
    ticket_id: TicketId,
    session: DbSession,
    actor: CurrentActor,
    after_seq: Annotated[int, Query(ge=0, le=2**31 - 1, description="Events after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TicketEventPage:
    """The ticket's history in seq order, a page at a time (hidden fields left out)."""
    return await service.list_events(session, actor, ticket_id, after_seq, limit)
