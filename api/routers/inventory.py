"""/inventory: parts, warehouses, stock levels, the stock ledger, low-stock alerts, receipts.

Everything is scoped by the caller's regions: a warehouse outside them is 404 wherever it is named.
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status

from api.bounds import Offset
from api.deps import DbSession, StaffActor
from api.services import inventory as service
from models.inventory import AlertStatus, MovementKind
from models.inventory_http import (
    AlertPage,
    MovementPage,
    PartOut,
    ReceiptCreate,
    ReceiptOut,
    StockPage,
    WarehouseOut,
)
from models.schemas import Problem

router = APIRouter(prefix="/inventory", tags=["inventory"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    404: {"model": Problem, "description": "No such warehouse in the caller's regions"},
}
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/parts", response_model=list[PartOut], responses=ERRORS, summary="The parts catalog")
async def list_parts(session: DbSession, _actor: StaffActor) -> list[PartOut]:
    return await service.list_parts(session)


@router.get(
    "/warehouses", response_model=list[WarehouseOut], responses=ERRORS, summary="Warehouses of the caller's regions"
)
async def list_warehouses(session: DbSession, actor: StaffActor, region: str | None = None) -> list[WarehouseOut]:
    return await service.list_warehouses(session, actor, region)


@router.get("/stock", response_model=StockPage, responses=ERRORS, summary="Stock levels (on hand, reserved, available)")
async def list_stock(
    session: DbSession,
    actor: StaffActor,
    warehouse: str | None = None,
    sku: str | None = None,
    region: str | None = None,
    low_only: Annotated[bool, Query(description="Only levels below the part's reorder point")] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> StockPage:
    return await service.list_stock(
        session, actor, service.StockFilter(warehouse, sku, region, low_only), limit, offset
    )


@router.get("/movements", response_model=MovementPage, responses=ERRORS, summary="The stock ledger, newest first")
async def list_movements(
    session: DbSession,
    actor: StaffActor,
    ticket_id: str | None = None,
    sku: str | None = None,
    warehouse: str | None = None,
    kind: MovementKind | None = None,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> MovementPage:
    return await service.list_movements(
        session, actor, service.MovementFilter(ticket_id, sku, warehouse, kind), limit, cursor
    )


@router.get("/alerts", response_model=AlertPage, responses=ERRORS, summary="Low-stock alerts, newest first")
async def list_alerts(
    session: DbSession,
    actor: StaffActor,
    status_: Annotated[AlertStatus | Literal["all"], Query(alias="status")] = AlertStatus.OPEN,
    warehouse: str | None = None,
    sku: str | None = None,
    region: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> AlertPage:
    f = service.AlertFilter(None if status_ == "all" else AlertStatus(status_), warehouse, sku, region)
    return await service.list_alerts(session, actor, f, limit, offset)


@router.post(
    "/receipts",
    response_model=ReceiptOut,
    status_code=status.HTTP_201_CREATED,
    summary="Receive stock into a warehouse",
    responses={
        200: {"model": ReceiptOut, "description": "Repeat of an earlier receipt with the same key: that receipt"},
        403: {"model": Problem, "description": "The caller's roles may not receive stock"},
        **ERRORS,
    },
)
async def receive_stock(
    body: ReceiptCreate,
    response: Response,
    session: DbSession,
    actor: StaffActor,
    idempotency_key: Annotated[
        str, Header(min_length=1, max_length=150, description="Repeating a receipt with the same key books it once.")
    ],
) -> ReceiptOut:
    received = await service.receive(session, actor, body, idempotency_key)
    if not received.new:
        response.status_code = status.HTTP_200_OK
    return received.receipt
