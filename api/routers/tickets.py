"""/tickets: create, read, list, and one POST route per action (each a Temporal Update)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status
from pydantic import BaseModel, ValidationError

from api.deps import AppSettings, CurrentActor, DbSession, TemporalClient
from api.errors import ProblemList
from api.services import tickets as service
from models.schemas import (
    EventAccepted,
    Problem,
    TicketCreate,
    TicketEventPage,
    TicketOut,
    TicketPage,
    body_model,
)
from models.ticket import EventInput, Priority, TicketStatus
from workflows.actions import ACTIONS, ActionDef

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
        503: {
            "model": Problem,
            "description": "Temporal (or the database) cannot take the ticket now: send the request again "
            "after `Retry-After` seconds with the same Idempotency-Key (it makes one ticket)",
        },
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


@router.get(
    "",
    response_model=TicketPage,
    responses={**ERRORS, 403: {"model": Problem, "description": "?region= outside the caller's regions"}},
)
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
    sla_breached: Annotated[
        bool | None, Query(description="Only tickets that did (or did not) miss an SLA target")
    ] = None,
    customer_id: Annotated[
        str | None, Query(max_length=32, description="A customer's tickets, with those of records merged into it")
    ] = None,
    asset_id: Annotated[str | None, Query(max_length=32, description="An asset's tickets (its repair history)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> TicketPage:
    filters = service.TicketFilter(
        status_, region, priority, assignee, ticket_type, created_from, created_to, sla_breached, customer_id, asset_id
    )
    return await service.list_tickets(session, actor, filters, limit, cursor)


@router.get("/{ticket_id}", response_model=TicketOut, responses=ERRORS)
async def get_ticket(ticket_id: TicketId, session: DbSession, client: TemporalClient, actor: CurrentActor) -> TicketOut:
    return await service.get_ticket(session, client, actor, ticket_id)


ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": Problem, "description": "The caller may not take this action on this ticket"},
    409: {
        "model": Problem,
        "description": "Not allowed in the ticket's current status (see allowed_actions), "
        "or it would change a field an approval decided on",
    },
    503: {"model": Problem, "description": "Temporal or the worker cannot take actions now; retry"},
    504: {
        "model": Problem,
        "description": "Not answered in time: `applied` false — it will never apply; "
        "true — it will complete (repeat with the same Idempotency-Key)",
    },
}


IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        description="Repeating a request with the same key returns its first outcome "
        "instead of acting twice (a key reused for another request is a 422).",
    ),
]


def _action_endpoint(d: ActionDef, body_type: type[BaseModel]) -> Any:
    async def run(ticket_id, session, client, settings, actor, payload: BaseModel | None, key: str | None) -> TicketOut:
        if payload is None:  # no body: each required field is named, not "body: Field required"
            try:
                payload = body_type.model_validate({})
            except ValidationError as exc:
                raise ProblemList(
                    [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
                ) from exc
        update_input = d.input(actor=actor, **payload.model_dump())
        return await service.act(session, client, settings, actor, ticket_id, d, update_input, key)

    async def endpoint(
        ticket_id: TicketId,
        session: DbSession,
        client: TemporalClient,
        settings: AppSettings,
        actor: CurrentActor,
        payload: body_type | None = None,  # type: ignore[valid-type]  # left out: the required fields are named
        idempotency_key: IdempotencyKey = None,
    ) -> TicketOut:
        return await run(ticket_id, session, client, settings, actor, payload, idempotency_key)

    endpoint.__name__ = f"{d.name}_ticket"
    return endpoint


for _d in ACTIONS.values():
    if _d.action is None:  # events have their own route below
        continue
    router.add_api_route(
        f"/{{ticket_id}}/actions/{_d.name}",
        _action_endpoint(_d, body_model(_d.input)),
        methods=["POST"],
        response_model=TicketOut,
        responses=ACTION_ERRORS,
        summary=f"{_d.name.capitalize()}: {_d.summary}",
    )

EventBody = body_model(EventInput)


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
