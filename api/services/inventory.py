"""Inventory reads and receipts, scoped by the caller's regions: a warehouse outside them is
``NotFound`` wherever it is named, and never appears in a list."""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from activities import inventory as ledger
from api.bounds import MAX_INT64
from api.errors import FieldInvalid, Forbidden, NotFound
from domain.access import can_access_region, visible_regions
from models.inventory import (
    AlertOut,
    AlertPage,
    AlertStatus,
    MovementKind,
    MovementOut,
    MovementPage,
    PartOut,
    ReceiptCreate,
    ReceiptOut,
    StockLevelOut,
    StockPage,
    WarehouseOut,
)
from models.inventory_tables import Part, StockAlert, StockLevel, StockMovement, Warehouse
from models.ticket import ActorRef

# Who may book stock into a warehouse (besides region scope).
RECEIVING_ROLES = frozenset({"admin", "supervisor", "warehouse"})

_PART, _WH, _LEVEL = Part.__table__, Warehouse.__table__, StockLevel.__table__
_MOVE, _ALERT = StockMovement.__table__, StockAlert.__table__


def _in_scope(actor: ActorRef) -> list[Any]:
    regions = visible_regions(actor)
    return [] if regions is None else [_WH.c.region.in_(regions)]


async def _visible_warehouse(conn: AsyncConnection, actor: ActorRef, code: str) -> Any:
    row = (await conn.execute(sa.select(_WH).where(_WH.c.code == code))).first()
    if row is None or not can_access_region(actor, row.region):
        raise NotFound(f"warehouse {code} not found")
    return row


# --- stock levels ---

_STOCK = (
    sa.select(
        _LEVEL.c.warehouse, _WH.c.region, _LEVEL.c.sku, _PART.c.name.label("part_name"), _PART.c.unit,
        _LEVEL.c.on_hand, _LEVEL.c.reserved, (_LEVEL.c.on_hand - _LEVEL.c.reserved).label("available"),
        _PART.c.reorder_point, _LEVEL.c.updated_at,
    )
    .join(_WH, _WH.c.code == _LEVEL.c.warehouse)
    .join(_PART, _PART.c.sku == _LEVEL.c.sku)
)


def _stock_out(row: Any) -> StockLevelOut:
    return StockLevelOut(**row._mapping, low=row.available < row.reorder_point)


@dataclass
class StockFilter:
    warehouse: str | None = None
    sku: str | None = None
    region: str | None = None
    low_only: bool = False


async def list_stock(session: AsyncSession, actor: ActorRef, f: StockFilter, limit: int, offset: int) -> StockPage:
    conn = await session.connection()
    if f.warehouse is not None:
        await _visible_warehouse(conn, actor, f.warehouse)
    q = _STOCK.where(*_in_scope(actor))
    if f.warehouse is not None:
        q = q.where(_LEVEL.c.warehouse == f.warehouse)
    if f.sku is not None:
        q = q.where(_LEVEL.c.sku == f.sku)
    if f.region is not None:
        q = q.where(_WH.c.region == f.region)
    if f.low_only:
        q = q.where(_LEVEL.c.on_hand - _LEVEL.c.reserved < _PART.c.reorder_point)
    rows = (await conn.execute(q.order_by(_LEVEL.c.warehouse, _LEVEL.c.sku).limit(limit + 1).offset(offset))).all()
    return StockPage(items=[_stock_out(r) for r in rows[:limit]],
                     next_offset=offset + limit if len(rows) > limit else None)


async def _stock_level(conn: AsyncConnection, warehouse: str, sku: str) -> StockLevelOut:
    row = (await conn.execute(_STOCK.where(_LEVEL.c.warehouse == warehouse, _LEVEL.c.sku == sku))).one()
    return _stock_out(row)


# --- movements ---


@dataclass
class MovementFilter:
    ticket_id: str | None = None
    sku: str | None = None
    warehouse: str | None = None
    kind: MovementKind | None = None


def _decode_cursor(cursor: str) -> int:
    try:
        value = int(cursor) if len(cursor) <= 19 else -1
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_INT64:
        raise FieldInvalid("cursor", "malformed cursor: pass back next_cursor unchanged", location="query")
    return value


async def list_movements(
    session: AsyncSession, actor: ActorRef, f: MovementFilter, limit: int, cursor: str | None
) -> MovementPage:
    """Newest first; keyset pagination on the ledger id (stable while movements are appended)."""
    conn = await session.connection()
    if f.warehouse is not None:
        await _visible_warehouse(conn, actor, f.warehouse)
    q = sa.select(_MOVE).join(_WH, _WH.c.code == _MOVE.c.warehouse).where(*_in_scope(actor))
    for column, value in ((_MOVE.c.ticket_id, f.ticket_id), (_MOVE.c.sku, f.sku), (_MOVE.c.warehouse, f.warehouse)):
        if value is not None:
            q = q.where(column == value)
    if f.kind is not None:
        q = q.where(_MOVE.c.kind == f.kind.value)
    if cursor is not None:
        q = q.where(_MOVE.c.id < _decode_cursor(cursor))
    rows = (await conn.execute(q.order_by(_MOVE.c.id.desc()).limit(limit + 1))).all()
    items = [MovementOut.model_validate(dict(r._mapping)) for r in rows[:limit]]
    return MovementPage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


# --- alerts ---


@dataclass
class AlertFilter:
    status: AlertStatus | None = AlertStatus.OPEN  # None: both
    warehouse: str | None = None
    sku: str | None = None
    region: str | None = None


async def list_alerts(session: AsyncSession, actor: ActorRef, f: AlertFilter, limit: int, offset: int) -> AlertPage:
    """Newest first."""
    conn = await session.connection()
    if f.warehouse is not None:
        await _visible_warehouse(conn, actor, f.warehouse)
    q = (
        sa.select(_ALERT, _WH.c.region, _PART.c.name.label("part_name"))
        .join(_WH, _WH.c.code == _ALERT.c.warehouse)
        .join(_PART, _PART.c.sku == _ALERT.c.sku)
        .where(*_in_scope(actor))
    )
    for column, value in ((_ALERT.c.warehouse, f.warehouse), (_ALERT.c.sku, f.sku), (_WH.c.region, f.region)):
        if value is not None:
            q = q.where(column == value)
    if f.status is not None:
        q = q.where(_ALERT.c.status == f.status.value)
    rows = (await conn.execute(q.order_by(_ALERT.c.id.desc()).limit(limit + 1).offset(offset))).all()
    return AlertPage(items=[AlertOut.model_validate(dict(r._mapping)) for r in rows[:limit]],
                     next_offset=offset + limit if len(rows) > limit else None)


# --- receipts ---


@dataclass
class Received:
    receipt: ReceiptOut
    new: bool  # False: an earlier request with the same Idempotency-Key booked it


async def receive(session: AsyncSession, actor: ActorRef, body: ReceiptCreate, idempotency_key: str) -> Received:
    if not RECEIVING_ROLES.intersection(actor.roles):
        raise Forbidden(f"actor {actor.id!r} may not receive stock (roles: {', '.join(sorted(RECEIVING_ROLES))})")
    conn = await session.connection()
    warehouse = (await conn.execute(sa.select(_WH.c.region).where(_WH.c.code == body.warehouse))).first()
    if warehouse is None:
        raise FieldInvalid("warehouse", f"unknown warehouse {body.warehouse!r}", "unknown_warehouse")
    if not can_access_region(actor, warehouse.region):
        raise NotFound(f"warehouse {body.warehouse} not found")
    if (await conn.execute(sa.select(_PART.c.sku).where(_PART.c.sku == body.sku))).first() is None:
        raise FieldInvalid("sku", f"unknown part {body.sku!r}", "unknown_sku")

    movement_id, new = await ledger.receive(
        conn, key=f"receipt:{idempotency_key}", warehouse=body.warehouse, sku=body.sku, quantity=body.quantity,
        actor_id=actor.id, note=body.note,
    )
    await session.commit()
    conn = await session.connection()
    movement = MovementOut.model_validate(
        dict((await conn.execute(sa.select(_MOVE).where(_MOVE.c.id == movement_id))).one()._mapping)
    )
    if not new and (movement.warehouse, movement.sku, movement.quantity, movement.note) != (
        body.warehouse, body.sku, body.quantity, body.note
    ):
        raise FieldInvalid("Idempotency-Key", "this Idempotency-Key was already used with a different receipt",
                           "idempotency_key_reused", location="header")
    stock = await _stock_level(conn, movement.warehouse, movement.sku)
    return Received(ReceiptOut(movement=movement, stock=stock), new=new)


# --- reference data ---


async def list_parts(session: AsyncSession) -> list[PartOut]:
    conn = await session.connection()
    rows = (await conn.execute(sa.select(_PART).order_by(_PART.c.sku))).all()
    return [PartOut.model_validate(dict(r._mapping)) for r in rows]


async def list_warehouses(session: AsyncSession, actor: ActorRef, region: str | None) -> list[WarehouseOut]:
    conn = await session.connection()
    q = sa.select(_WH).where(*_in_scope(actor))
    if region is not None:
        q = q.where(_WH.c.region == region)
    rows = (await conn.execute(q.order_by(_WH.c.code))).all()
    return [WarehouseOut.model_validate(dict(r._mapping)) for r in rows]
