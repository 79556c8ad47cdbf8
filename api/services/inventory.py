"""Inventory reads and receipts, scoped by the caller's regions: a warehouse outside them is
``NotFound`` wherever it is named, and never appears in a list."""

from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

import store.inventory
from api.errors import FieldInvalid, Forbidden, NotFound
from api.services.paging import cursor_key
from domain.access import can_access_region, visible_regions
from models.inventory import AlertStatus, MovementKind
from models.inventory_http import (
    AlertOut,
    AlertPage,
    MovementOut,
    MovementPage,
    PartOut,
    ReceiptCreate,
    ReceiptOut,
    StockLevelOut,
    StockPage,
    WarehouseOut,
)
from models.ticket import ActorRef

# Who may book stock into a warehouse (besides region scope).
RECEIVING_ROLES = frozenset({"admin", "supervisor", "warehouse"})


async def _visible_warehouse(session: AsyncSession, actor: ActorRef, code: str) -> Any:
    row = await store.inventory.warehouse(session, code)
    if row is None or not can_access_region(actor, row.region):
        raise NotFound(f"warehouse {code} not found")
    return row


# --- stock levels ---


def _stock_out(row: Any) -> StockLevelOut:
    return StockLevelOut(**row._mapping, low=row.available < row.reorder_point)


@dataclass
class StockFilter:
    warehouse: str | None = None
    sku: str | None = None
    region: str | None = None
    low_only: bool = False


async def list_stock(session: AsyncSession, actor: ActorRef, f: StockFilter, limit: int, offset: int) -> StockPage:
    if f.warehouse is not None:
        await _visible_warehouse(session, actor, f.warehouse)
    rows = await store.inventory.stock_levels(
        session,
        visible_regions(actor),
        warehouse=f.warehouse,
        sku=f.sku,
        region=f.region,
        low_only=f.low_only,
        limit=limit,
        offset=offset,
    )
    return StockPage(
        items=[_stock_out(r) for r in rows[:limit]], next_offset=offset + limit if len(rows) > limit else None
    )


# --- movements ---


@dataclass
class MovementFilter:
    ticket_id: str | None = None
    sku: str | None = None
    warehouse: str | None = None
    kind: MovementKind | None = None


async def list_movements(
    session: AsyncSession, actor: ActorRef, f: MovementFilter, limit: int, cursor: str | None
) -> MovementPage:
    """Newest first; keyset pagination on the ledger id (stable while movements are appended)."""
    if f.warehouse is not None:
        await _visible_warehouse(session, actor, f.warehouse)
    rows, next_cursor = await store.inventory.movements(
        session,
        visible_regions(actor),
        ticket_id=f.ticket_id,
        sku=f.sku,
        warehouse=f.warehouse,
        kind=f.kind.value if f.kind is not None else None,
        limit=limit,
        after=cursor_key(cursor, int),
    )
    return MovementPage(items=[MovementOut.model_validate(r) for r in rows], next_cursor=next_cursor)


# --- alerts ---


@dataclass
class AlertFilter:
    status: AlertStatus | None = AlertStatus.OPEN  # None: both
    warehouse: str | None = None
    sku: str | None = None
    region: str | None = None


async def list_alerts(session: AsyncSession, actor: ActorRef, f: AlertFilter, limit: int, offset: int) -> AlertPage:
    """Newest first."""
    if f.warehouse is not None:
        await _visible_warehouse(session, actor, f.warehouse)
    rows = await store.inventory.alerts(
        session,
        visible_regions(actor),
        status=f.status.value if f.status is not None else None,
        warehouse=f.warehouse,
        sku=f.sku,
        region=f.region,
        limit=limit,
        offset=offset,
    )
    return AlertPage(
        items=[AlertOut.model_validate(r) for r in rows[:limit]],
        next_offset=offset + limit if len(rows) > limit else None,
    )


# --- receipts ---


@dataclass
class Received:
    receipt: ReceiptOut
    new: bool  # False: an earlier request with the same Idempotency-Key booked it


async def receive(session: AsyncSession, actor: ActorRef, body: ReceiptCreate, idempotency_key: str) -> Received:
    if not RECEIVING_ROLES.intersection(actor.roles):
        raise Forbidden(f"actor {actor.id!r} may not receive stock (roles: {', '.join(sorted(RECEIVING_ROLES))})")
    warehouse = await store.inventory.warehouse(session, body.warehouse)
    if warehouse is None:
        raise FieldInvalid("warehouse", f"unknown warehouse {body.warehouse!r}", "unknown_warehouse")
    if not can_access_region(actor, warehouse.region):
        raise NotFound(f"warehouse {body.warehouse} not found")
    if not await store.inventory.part_exists(session, body.sku):
        raise FieldInvalid("sku", f"unknown part {body.sku!r}", "unknown_sku")

    movement_id, new = await store.inventory.receive(
        session,
        key=f"receipt:{idempotency_key}",
        warehouse=body.warehouse,
        sku=body.sku,
        quantity=body.quantity,
        actor_id=actor.id,
        note=body.note,
    )
    await session.commit()
    movement = MovementOut.model_validate(await store.inventory.movement(session, movement_id))
    if not new and (movement.warehouse, movement.sku, movement.quantity, movement.note) != (
        body.warehouse,
        body.sku,
        body.quantity,
        body.note,
    ):
        raise FieldInvalid(
            "Idempotency-Key",
            "this Idempotency-Key was already used with a different receipt",
            "idempotency_key_reused",
            location="header",
        )
    stock = _stock_out(await store.inventory.stock_level(session, movement.warehouse, movement.sku))
    return Received(ReceiptOut(movement=movement, stock=stock), new=new)


# --- reference data ---


async def list_parts(session: AsyncSession) -> list[PartOut]:
    return [PartOut.model_validate(r) for r in await store.inventory.parts(session)]


async def list_warehouses(session: AsyncSession, actor: ActorRef, region: str | None) -> list[WarehouseOut]:
    return [
        WarehouseOut.model_validate(r)
        for r in await store.inventory.warehouses(session, visible_regions(actor), region)
    ]
