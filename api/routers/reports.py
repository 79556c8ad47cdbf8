"""/reports: manager dashboards over the read model (never Temporal), scoped by the caller's
regions. Readers: supervisor, manager, director, general manager, admin. ``docs/reports.md``
describes every figure."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from api.deps import DbSession, StaffActor
from api.errors import FieldInvalid
from api.services import reports as service
from models.reports import CsatReport, Overview, Workload
from models.schemas import Problem

router = APIRouter(prefix="/reports", tags=["reports"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "Not a report reader, or the region is outside the caller's scope"},
}
RegionQuery = Annotated[
    str | None,
    Query(max_length=32, description="One region (422 if unknown). Omitted: every region the caller covers"),
]


@router.get(
    "/overview",
    response_model=Overview,
    responses=ERRORS,
    summary="Open tickets, throughput, SLA and resolution times per region and in total",
)
async def overview(
    session: DbSession,
    actor: StaffActor,
    region: RegionQuery = None,
    since: Annotated[AwareDatetime | None, Query(description="Start, inclusive. Default: until - 30 days")] = None,
    until: Annotated[AwareDatetime | None, Query(description="End, exclusive. Default: now")] = None,
) -> Overview:
    return await service.overview(session, actor, region, since, until)


@router.get(
    "/workload",
    response_model=Workload,
    responses=ERRORS,
    summary="Open tickets, capacity and utilisation per person and per team, busiest first",
)
async def workload(
    session: DbSession,
    actor: StaffActor,
    region: RegionQuery = None,
    role: Annotated[str | None, Query(max_length=64, description="Only people with this role, e.g. engineer")] = None,
    team: Annotated[str | None, Query(max_length=64, description="Only people of this primary team")] = None,
) -> Workload:
    return await service.workload(session, actor, region, role, team)


def _one_of(name: str, value: Any, alias: str, other: Any) -> Any:
    if value is not None and other is not None:
        raise FieldInvalid(alias, f"give {name} or {alias}, not both", "duplicate", location="query")
    return value if value is not None else other


@router.get(
    "/csat",
    response_model=CsatReport,
    responses=ERRORS,
    summary="Customer satisfaction (survey answers) per region, team, engineer or ticket type",
)
async def csat(
    session: DbSession,
    actor: StaffActor,
    group_by: Annotated[
        Literal["region", "team", "engineer", "ticket_type"], Query(description="What one row of the report is")
    ] = "region",
    region: RegionQuery = None,
    since: Annotated[AwareDatetime | None, Query(description="Start, inclusive. Default: until - 30 days")] = None,
    until: Annotated[AwareDatetime | None, Query(description="End, exclusive. Default: now")] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from", description="The same as since")] = None,
    to: Annotated[AwareDatetime | None, Query(description="The same as until")] = None,
) -> CsatReport:
    start, end = _one_of("since", since, "from", from_), _one_of("until", until, "to", to)
    return await service.csat(session, actor, region, group_by, start, end)
