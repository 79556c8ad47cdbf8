"""/me: the caller's work (tasks and approvals, soonest deadline first), in-app notifications
(list, mark read) and contact details."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.bounds import IdPath
from api.deps import CurrentActor, DbSession, StaffActor
from api.services import notifications as service
from api.services import work
from models.notifications_http import ContactIn, ContactOut, NotificationOut, NotificationPage, ReadAllResult
from models.schemas import Problem
from models.ticket import ActorRef
from models.work_http import WorkPage

router = APIRouter(prefix="/me", tags=["me"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": Problem, "description": "No or unknown credentials"}}


@router.get("", response_model=ActorRef, responses=ERRORS, summary="Who the credential is: id, name, roles, regions")
async def whoami(actor: CurrentActor) -> ActorRef:
    """The person the API key (or token) belongs to, as every other route sees them."""
    return actor


@router.get(
    "/work",
    response_model=WorkPage,
    responses={**ERRORS, 403: {"model": Problem, "description": "A channel account: it has no work"}},
    summary="My work: tasks held, offered or claimable and approvals waiting for my vote, by SLA deadline",
)
async def my_work(session: DbSession, actor: StaffActor, limit: Annotated[int, Query(ge=1, le=200)] = 100) -> WorkPage:
    """Open tickets of your regions where you hold a task (or it was delegated to you), it is
    offered to you, your user, role or group may claim it, or an approval waits for your vote —
    soonest deadline first (the earliest running SLA target, or the approval level's timeout;
    none: last), then by priority. ``seconds_left`` is negative once overdue."""
    return await work.my_work(session, actor, limit)


@router.get("/notifications", response_model=NotificationPage, responses=ERRORS)
async def list_notifications(
    session: DbSession,
    actor: CurrentActor,
    unread_only: bool = False,
    ticket_id: Annotated[str | None, Query(max_length=64, description="Only notifications about this ticket")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> NotificationPage:
    """Your inbox, newest first. ``unread_count`` counts every unread item (of ``ticket_id``, if given)."""
    return await service.list_notifications(session, actor, unread_only, ticket_id, limit, cursor)


@router.post(
    "/notifications/read-all",
    response_model=ReadAllResult,
    responses=ERRORS,
    summary="Mark every unread notification read (of one ticket, with ticket_id)",
)
async def read_all(
    session: DbSession,
    actor: CurrentActor,
    ticket_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ReadAllResult:
    return await service.mark_all_read(session, actor, ticket_id)


@router.post(
    "/notifications/{notification_id}/read",
    response_model=NotificationOut,
    responses={**ERRORS, 404: {"model": Problem, "description": "Not in your inbox"}},
    summary="Mark one notification read (idempotent)",
)
async def read_one(notification_id: IdPath, session: DbSession, actor: CurrentActor) -> NotificationOut:
    return await service.mark_read(session, actor, notification_id)


@router.get("/contact", response_model=ContactOut, responses=ERRORS, summary="Where notifications reach you")
async def get_contact(session: DbSession, actor: CurrentActor) -> ContactOut:
    return await service.get_contact(session, actor)


@router.put("/contact", response_model=ContactOut, responses=ERRORS, summary="Set your email, phone and IM user")
async def put_contact(body: ContactIn, session: DbSession, actor: CurrentActor) -> ContactOut:
    return await service.put_contact(session, actor, body)
