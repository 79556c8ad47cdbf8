"""/schedules: maintenance plans for assets under contract and the follow-ups templates declare,
each a Temporal Schedule (docs/schedules.md). Staff only; a schedule outside the caller's
regions is a 404; creating, pausing, resuming and deleting take a supervisor, manager or admin.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status

from api.deps import AppSettings, DbSession, StaffActor, TemporalClient
from api.services import schedules as service
from models.schedules import ScheduleCreate, ScheduleDetail, ScheduleKind, ScheduleOut, SchedulePage, ScheduleState
from models.schemas import Problem

router = APIRouter(prefix="/schedules", tags=["schedules"])
ScheduleId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "A channel account, or roles that may not do this"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such schedule in the caller's regions"},
    **ERRORS,
}
TEMPORAL: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "Temporal did not answer; retry"},
}


@router.post(
    "",
    response_model=ScheduleOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ScheduleOut, "description": "Repeat of an earlier request with the same key: that plan"},
        **ERRORS,
        **TEMPORAL,
    },
    summary="Plan maintenance: a ticket on an asset under contract every N days (a Temporal Schedule)",
)
async def create_schedule(
    body: ScheduleCreate,
    response: Response,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    actor: StaffActor,
    idempotency_key: Annotated[
        str | None, Header(max_length=200, description="Repeating a request with the same key returns the same plan.")
    ] = None,
) -> ScheduleOut:
    created, new = await service.create(session, client, settings, actor, body, idempotency_key)
    if not new:
        response.status_code = status.HTTP_200_OK
    return created


@router.get(
    "", response_model=SchedulePage, responses=ERRORS, summary="Schedules of the caller's regions, newest first"
)
async def list_schedules(
    session: DbSession,
    actor: StaffActor,
    kind: ScheduleKind | None = None,
    state: Annotated[ScheduleState | None, Query(description="Deleted ones are listed only when asked for")] = None,
    asset_id: Annotated[str | None, Query(max_length=32)] = None,
    source_ticket: Annotated[str | None, Query(max_length=32, description="Follow-ups of this ticket")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")] = None,
) -> SchedulePage:
    f = service.ScheduleFilter(kind, state, asset_id, source_ticket)
    return await service.list_schedules(session, actor, f, limit, cursor)


@router.get(
    "/{schedule_id}",
    response_model=ScheduleDetail,
    responses={**NOT_FOUND, **TEMPORAL},
    summary="One schedule with its next runs and recent runs, as Temporal describes it",
)
async def get_schedule(
    schedule_id: ScheduleId, session: DbSession, client: TemporalClient, actor: StaffActor
) -> ScheduleDetail:
    return await service.get(session, client, actor, schedule_id)


CHANGE: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    **TEMPORAL,
    409: {"model": Problem, "description": "The schedule is deleted, or gone from Temporal"},
}


@router.post("/{schedule_id}/pause", response_model=ScheduleDetail, responses=CHANGE, summary="Pause a schedule")
async def pause_schedule(
    schedule_id: ScheduleId, session: DbSession, client: TemporalClient, actor: StaffActor
) -> ScheduleDetail:
    return await service.pause(session, client, actor, schedule_id)


@router.post("/{schedule_id}/resume", response_model=ScheduleDetail, responses=CHANGE, summary="Resume a schedule")
async def resume_schedule(
    schedule_id: ScheduleId, session: DbSession, client: TemporalClient, actor: StaffActor
) -> ScheduleDetail:
    return await service.resume(session, client, actor, schedule_id)


@router.delete(
    "/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, **TEMPORAL},
    summary="Delete a schedule (no more firings; the tickets it opened stay)",
)
async def delete_schedule(
    schedule_id: ScheduleId, session: DbSession, client: TemporalClient, actor: StaffActor
) -> None:
    await service.delete(session, client, actor, schedule_id)
