"""/audit: who changed people, roles, keys, templates and prices — admins of every region only."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import CurrentActor, DbSession
from api.services import audit as service
from models.audit import AuditPage
from models.schemas import Problem

router = APIRouter(tags=["audit"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "Not an admin of every region"},
}
Text = Annotated[str | None, Query(max_length=200)]


@router.get(
    "/audit",
    response_model=AuditPage,
    responses=ERRORS,
    summary="The audit log, newest first: who changed what, with which credential, before and after",
)
async def list_audit(
    session: DbSession,
    actor: CurrentActor,
    target_type: Annotated[str | None, Query(max_length=32, description="person, template, price_rules")] = None,
    target_id: Text = None,
    actor_id: Annotated[str | None, Query(max_length=64, description="who made the change")] = None,
    action: Annotated[str | None, Query(max_length=32, description="e.g. role.grant")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> AuditPage:
    return await service.list_entries(
        session,
        actor,
        target_type=target_type,
        target_id=target_id,
        actor_id=actor_id,
        action=action,
        limit=limit,
        cursor=cursor,
    )
