"""Settlement: a ticket's statement, statement lists, the reconciliation CSV, and price rules.

Scoped by the caller's regions (outside them: 404). Finance and admin see every field; other
roles get statements without the revenue split and the rule behind each line.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import StreamingResponse

from api.bounds import Offset
from api.deps import DbSession, StaffActor
from api.services import settlement as service
from models.pricing import RegionPricing
from models.schemas import Problem
from models.settlement import SettlementKind
from models.settlement_http import PriceRulesOut, PriceRulesVersion, StatementOut, StatementPage

router = APIRouter(tags=["settlement"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "The caller's roles do not allow this"},
    404: {"model": Problem, "description": "Not found in the caller's regions"},
}


class CsvResponse(StreamingResponse):
    """A CSV body streamed as it is written (``text/csv; charset=utf-8``)."""

    media_type = "text/csv"


From = Annotated[datetime | None, Query(alias="from", description="created at or after (ISO date or datetime, UTC)")]
To = Annotated[datetime | None, Query(alias="to", description="created before (exclusive)")]


@router.get(
    "/tickets/{ticket_id}/statement",
    response_model=StatementOut,
    responses=ERRORS,
    summary="A ticket's statement: the latest final one, else the pre-settlement",
)
async def ticket_statement(
    ticket_id: str,
    session: DbSession,
    actor: StaffActor,
    kind: Annotated[SettlementKind | None, Query(description="only this kind")] = None,
) -> StatementOut:
    return await service.ticket_statement(session, actor, ticket_id, kind)


@router.get(
    "/statements",
    response_model=StatementPage,
    responses=ERRORS,
    summary="Statements by region and period, oldest first (finance, admin, manager, supervisor)",
)
async def list_statements(
    session: DbSession,
    actor: StaffActor,
    region: str | None = None,
    start: From = None,
    end: To = None,
    status_: Annotated[service.StatusFilter, Query(alias="status")] = "final",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> StatementPage:
    f = service.StatementFilter(region=region, start=start, end=end, status=status_)
    return await service.list_statements(session, actor, f, limit, offset)


@router.get(
    "/statements/export.csv",
    response_class=CsvResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **ERRORS},
    summary="Reconciliation export: one row per statement, then a TOTAL row per currency",
)
async def export_statements(
    session: DbSession,
    actor: StaffActor,
    region: str | None = None,
    start: From = None,
    end: To = None,
    status_: Annotated[service.StatusFilter, Query(alias="status")] = "final",
) -> CsvResponse:
    """Streamed: the rows are read in batches and sent as they are written, so any number of
    statements goes out in constant memory."""
    f = service.StatementFilter(region=region, start=start, end=end, status=status_)
    return CsvResponse(
        service.export_csv(session, actor, f),
        headers={"Content-Disposition": f'attachment; filename="{service.export_filename(f)}"'},
    )


@router.put(
    "/pricing/{region}",
    response_model=PriceRulesOut,
    status_code=201,
    responses={200: {"model": PriceRulesOut}, 409: {"model": Problem}, **ERRORS},
    summary="Publish a new version of a region's price rules (finance, admin)",
)
async def publish_rules(
    region: str, rules: RegionPricing, response: Response, session: DbSession, actor: StaffActor
) -> PriceRulesOut:
    """Validated like the engine does (422 naming the field, e.g. ``["body", "split"]``); the new
    version becomes the active one. The active version sent again unchanged: 200, nothing new."""
    out, new = await service.publish_rules(session, actor, region, rules)
    if not new:
        response.status_code = status.HTTP_200_OK
    return out


@router.get(
    "/pricing/{region}",
    response_model=PriceRulesOut,
    responses=ERRORS,
    summary="A region's active price rules (or one version)",
)
async def get_rules(region: str, session: DbSession, actor: StaffActor, version: str | None = None) -> PriceRulesOut:
    return await service.get_rules(session, actor, region, version)


@router.get(
    "/pricing/{region}/versions",
    response_model=list[PriceRulesVersion],
    responses=ERRORS,
    summary="Every published version of a region's price rules, oldest first",
)
async def list_rule_versions(region: str, session: DbSession, actor: StaffActor) -> list[PriceRulesVersion]:
    return await service.list_rule_versions(session, actor, region)
