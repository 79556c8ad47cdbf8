"""/tickets/{id}/links and /tickets/{id}/merge: tickets that belong together (docs/linked-tickets.md).
Staff only; both tickets in the caller's regions (else 404)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from api.deps import AppSettings, DbSession, StaffActor, TemporalClient
from api.services import links as service
from models.links_http import LinkCreate, LinkList, LinkOut, MergeBody, MergeOut
from models.schemas import Problem

router = APIRouter(prefix="/tickets", tags=["links"])
TicketId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
LinkId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^lnk_[0-9a-f]{1,36}$")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "A channel account (staff only)"},
    404: {"model": Problem, "description": "No such ticket (or link) in the caller's regions"},
}


@router.post(
    "/{ticket_id}/links",
    response_model=LinkOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **ERRORS,
        409: {"model": Problem, "description": "Linked so already, or already the duplicate of another ticket"},
        422: {"description": "A link to itself, or a chain of duplicates that would loop"},
    },
    summary="Link the ticket to another: duplicate_of, related_to or caused_by",
)
async def add_link(ticket_id: TicketId, body: LinkCreate, session: DbSession, actor: StaffActor) -> LinkOut:
    return await service.add_link(session, actor, ticket_id, body)


@router.get(
    "/{ticket_id}/links",
    response_model=LinkList,
    responses=ERRORS,
    summary="The ticket's links, from it and to it",
)
async def list_links(ticket_id: TicketId, session: DbSession, actor: StaffActor) -> LinkList:
    return await service.list_links(session, actor, ticket_id)


@router.delete(
    "/{ticket_id}/links/{link_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**ERRORS, 409: {"model": Problem, "description": "A merge's link: a merge is final"}},
    summary="Remove a link (from either of its tickets)",
)
async def delete_link(ticket_id: TicketId, link_id: LinkId, session: DbSession, actor: StaffActor) -> Response:
    await service.delete_link(session, actor, ticket_id, link_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{ticket_id}/merge",
    response_model=MergeOut,
    responses={
        **ERRORS,
        403: {"model": Problem, "description": "Not a supervisor, manager or admin (or a channel account)"},
        409: {
            "model": Problem,
            "description": "Either ticket is closed or cancelled, or the duplicate has another master",
        },
        422: {"description": "Into itself, another customer's ticket, or a loop of duplicates"},
        503: {"model": Problem, "description": "Temporal or the worker cannot take the cancel now; retry"},
        504: {"model": Problem, "description": "The ticket did not take the cancel in time"},
    },
    summary="Merge this duplicate into its master: linked, cancelled as merged, its later events forwarded",
)
async def merge(
    ticket_id: TicketId,
    body: MergeBody,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    actor: StaffActor,
) -> MergeOut:
    return await service.merge(session, client, settings, actor, ticket_id, body.into)
