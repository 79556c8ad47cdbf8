"""Spare parts: every query on ``part``, ``warehouse``, ``stock_level``, the append-only
``stock_movement`` ledger and ``stock_alert`` — reserve, consume and release a ticket's parts
(the inventory activities), receive stock (the API), the API's reads, and the low-stock alerts
still to announce. Stock never goes negative and never moves twice:

- every balance change is a conditional UPDATE (``… WHERE on_hand - reserved >= n`` for a
  reservation) backed by the table's CHECKs, in the same transaction as its ledger row;
- each ledger row has a unique idempotency key ``<ticket>:<node>:<line>.<allocation>:<kind>``,
  and each operation first looks at its ticket's ledger: an operation retried after its
  transaction committed finds its rows, moves nothing and rebuilds the same answer from them;
- one ticket's operations are serialized (a transaction-scoped advisory lock on PostgreSQL,
  ``BEGIN IMMEDIATE`` on SQLite), so even two concurrent attempts of one activity move stock once.

Insufficient stock is a normal answer (``status='insufficient'``), not an error. Business errors
are the non-retryable ``ApplicationError``s the activities raise as they are: ``UnknownPart``,
``ConsumptionExceedsReservation``. The rules themselves (warehouse choice, usage split, answers)
are in ``domain/stock.py``.
"""

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError

from domain import stock
from domain.stock import Entry, Need, Site
from models.db import Database, upsert_statement
from models.inventory import (
    ConsumeInput,
    ConsumeResult,
    MovementKind,
    ReleaseInput,
    ReleaseResult,
    ReservationStatus,
    ReserveInput,
    ReserveResult,
    WarehouseKind,
)
from models.inventory_tables import Part, StockAlert, StockLevel, StockMovement, Warehouse
from models.tables import UTC_DATETIME
from store import keyset

UNKNOWN_PART = "UnknownPart"
CONSUMPTION_EXCEEDS_RESERVATION = "ConsumptionExceedsReservation"
LEDGER_INCONSISTENT = "LedgerInconsistent"

_PART, _WH, _LEVEL = Part.__table__, Warehouse.__table__, StockLevel.__table__
_MOVE, _ALERT = StockMovement.__table__, StockAlert.__table__
_PLAN_ROUNDS = 8  # plans per reservation: again after a concurrent taker emptied a chosen warehouse
_TXN_ATTEMPTS = 5  # deadlock / serialization failure / key collision: run the transaction again

T = TypeVar("T")


# --- statements (SQLAlchemy Core: built once, compiled once) ---

_AVAILABLE = _LEVEL.c.on_hand - _LEVEL.c.reserved
_AT = sa.bindparam("at", type_=UTC_DATETIME)

_RESERVE = (
    _LEVEL.update()
    .where(
        _LEVEL.c.warehouse == sa.bindparam("w"),
        _LEVEL.c.sku == sa.bindparam("s"),
        _AVAILABLE >= sa.bindparam("n", type_=sa.Integer),
    )
    .values(reserved=_LEVEL.c.reserved + sa.bindparam("n", type_=sa.Integer), updated_at=_AT)
    .returning(_LEVEL.c.on_hand, _LEVEL.c.reserved)
)
# Consumption and release: reserved -= r (r = consumed + released), on_hand -= c (consumed).
_SETTLE = (
    _LEVEL.update()
    .where(
        _LEVEL.c.warehouse == sa.bindparam("w"),
        _LEVEL.c.sku == sa.bindparam("s"),
        _LEVEL.c.reserved >= sa.bindparam("r", type_=sa.Integer),
    )
    .values(
        on_hand=_LEVEL.c.on_hand - sa.bindparam("c", type_=sa.Integer),
        reserved=_LEVEL.c.reserved - sa.bindparam("r", type_=sa.Integer),
        updated_at=_AT,
    )
    .returning(_LEVEL.c.on_hand, _LEVEL.c.reserved)
)
_RESERVED_BEFORE = sa.exists().where(
    _MOVE.c.ticket_id == sa.bindparam("t"),
    _MOVE.c.node_id == sa.bindparam("node"),
    _MOVE.c.kind == MovementKind.RESERVATION.value,
)


def _candidates(named_warehouses: bool) -> sa.Select:
    """Every requested part (an unknown SKU: no row) with each warehouse of the region that has some
    available (LEFT JOIN: a part without stock still answers, warehouse NULL), and whether this
    node has reserved before (a retry) — one round trip."""
    site = _WH.c.region == sa.bindparam("region")
    if named_warehouses:
        site = sa.and_(site, _WH.c.code.in_(sa.bindparam("codes", expanding=True)))
    else:
        site = sa.and_(site, _WH.c.kind == WarehouseKind.REGIONAL.value)
    stock_in_region = _LEVEL.join(_WH, sa.and_(_WH.c.code == _LEVEL.c.warehouse, site))
    return (
        sa.select(
            _PART.c.sku,
            _PART.c.reorder_point,
            _PART.c.reorder_qty,
            _LEVEL.c.warehouse,
            _AVAILABLE.label("available"),
            _WH.c.lat,
            _WH.c.lon,
            _RESERVED_BEFORE.label("done"),
        )
        .select_from(_PART.outerjoin(stock_in_region, sa.and_(_LEVEL.c.sku == _PART.c.sku, _AVAILABLE > 0)))
        .where(_PART.c.sku.in_(sa.bindparam("skus", expanding=True)))
    )


_CANDIDATES = {named: _candidates(named) for named in (False, True)}
_LEDGER = (
    sa.select(
        _MOVE.c.kind,
        _MOVE.c.node_id,
        _MOVE.c.line,
        _MOVE.c.allocation,
        _MOVE.c.warehouse,
        _MOVE.c.sku,
        _MOVE.c.quantity,
        _PART.c.reorder_point,
        _PART.c.reorder_qty,
    )
    .join(_PART, _PART.c.sku == _MOVE.c.sku)
    .where(_MOVE.c.ticket_id == sa.bindparam("t"))
    .order_by(_MOVE.c.id)
)
_LEDGER_OF_NODE = _LEDGER.where(_MOVE.c.node_id == sa.bindparam("node"))
_PG_LOCK_TICKET = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")
_CLOSE_ALERT = (
    _ALERT.update()
    .where(_ALERT.c.warehouse == sa.bindparam("w"), _ALERT.c.sku == sa.bindparam("s"), _ALERT.c.status == "open")
    .values(status="closed", closed_at=_AT, available_at_close=sa.bindparam("available", type_=sa.Integer))
)

# --- PostgreSQL hot path: a reservation is two statements, sent straight through psycopg (the
# SQLAlchemy layer costs ~0.1 ms of CPU per statement; the budget is ~1 ms per reservation) ---

# _candidates, plus (first round) the ticket lock: see _reserve for why that is safe.
_PG_CANDIDATES_SQL = """
SELECT p.sku, p.reorder_point, p.reorder_qty, l.warehouse, l.on_hand - l.reserved AS available, w.lat, w.lon,
       EXISTS (SELECT FROM stock_movement m
               WHERE m.ticket_id = %(t)s AND m.node_id = %(node)s AND m.kind = 'reservation') AS done{lock}
FROM part p
LEFT JOIN (stock_level l JOIN warehouse w ON w.code = l.warehouse AND w.region = %(region)s AND {site})
       ON l.sku = p.sku AND l.on_hand - l.reserved > 0
WHERE p.sku = ANY(%(skus)s)
"""
_PG_LOCK_COLUMN = ",\n       (SELECT pg_advisory_xact_lock(hashtextextended(%(lock)s, 0))) IS NULL AS locked"
_PG_CANDIDATES = {
    (named, lock): _PG_CANDIDATES_SQL.format(
        site="w.code = ANY(%(codes)s)" if named else "w.kind = 'regional'", lock=_PG_LOCK_COLUMN if lock else ""
    )
    for named in (False, True)
    for lock in (False, True)
}
# The conditional UPDATE and its ledger row in one statement (no row back: nothing taken); the row
# lock is held only from here to COMMIT. ``guarded``: nothing either if the node has reserved by now.
_PG_TAKE_SQL = """
WITH level AS (
    UPDATE stock_level SET reserved = reserved + %(n)s, updated_at = %(at)s
    WHERE warehouse = %(w)s AND sku = %(s)s AND on_hand - reserved >= %(n)s{guard}
    RETURNING on_hand, reserved
), ledger AS (
    INSERT INTO stock_movement (idempotency_key, kind, warehouse, sku, quantity, ticket_id, node_id, line,
                                allocation, at, note)
    SELECT %(key)s, 'reservation', %(w)s, %(s)s, %(n)s, %(t)s, %(node)s, %(line)s, %(alloc)s, %(at)s, '' FROM level
    RETURNING id
)
SELECT on_hand, reserved FROM level
"""
_PG_RESERVED_BEFORE = """EXISTS (SELECT FROM stock_movement
                                 WHERE ticket_id = %(t)s AND node_id = %(node)s AND kind = 'reservation')"""
_PG_TAKE = {
    guarded: _PG_TAKE_SQL.format(guard=f"\n      AND NOT {_PG_RESERVED_BEFORE}" if guarded else "")
    for guarded in (False, True)
}


async def _pg_rows(driver: Any, sql: str, params: dict[str, Any]) -> list[Any]:
    """Run ``sql`` on the transaction's own psycopg connection; rows as named tuples."""
    async with driver.cursor(row_factory=namedtuple_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


# --- transactions ---


class _Rollback(Exception):
    """Undo the transaction, but answer ``result`` (all-or-nothing found a shortage)."""

    def __init__(self, result: Any) -> None:
        super().__init__("rollback")
        self.result = result


def _transient(exc: DBAPIError | psycopg.Error) -> bool:
    """Worth running the whole transaction again: a deadlock or serialization failure, or a
    ledger key another attempt committed first (the next run finds its rows). ``exc`` comes
    through SQLAlchemy, or straight from psycopg on the hot path."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "23505" or isinstance(exc, IntegrityError):  # unique violation
        return "idempotency_key" in str(orig)
    return sqlstate in ("40P01", "40001")  # deadlock detected, serialization failure


def _lock_key(ticket_id: str) -> str:
    return f"inventory:{ticket_id}"


async def in_ticket_transaction(
    db: Database, ticket_id: str, work: Callable[[AsyncConnection], Awaitable[T]], *, work_locks: bool = False
) -> T:
    """Run ``work`` in one transaction holding the ticket's inventory lock: one ticket's operations
    run one at a time, and each sees what the previous one committed.

    PostgreSQL: a transaction-scoped advisory lock on the ticket id, taken first — or, with
    ``work_locks``, by ``work``'s own first statement (a round trip less; see _reserve).
    SQLite: ``BEGIN IMMEDIATE`` (the database's write lock, taken before the first read)."""
    for attempt in range(1, _TXN_ATTEMPTS + 1):
        try:
            async with db.engine.begin() as conn:
                if conn.dialect.name != "postgresql":
                    await conn.exec_driver_sql("BEGIN IMMEDIATE")
                elif not work_locks:
                    await conn.execute(_PG_LOCK_TICKET, {"lock": _lock_key(ticket_id)})
                return await work(conn)
        except _Rollback as rollback:
            return rollback.result
        except (DBAPIError, psycopg.Error) as exc:
            if attempt == _TXN_ATTEMPTS or not _transient(exc):
                raise
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


def _now() -> datetime:
    return datetime.now(UTC)


# --- the ledger ---


async def _ledger(conn: AsyncConnection, ticket_id: str, node_id: str | None) -> list[Entry]:
    if node_id is None:
        result = await conn.execute(_LEDGER, {"t": ticket_id})
    else:
        result = await conn.execute(_LEDGER_OF_NODE, {"t": ticket_id, "node": node_id})
    return [Entry(*row) for row in result]


def _ledger_row(ticket_id: str, e: Entry, at: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": f"{ticket_id}:{e.node_id}:{e.line}.{e.allocation}:{e.kind}",
        "kind": str(e.kind),
        "warehouse": e.warehouse,
        "sku": e.sku,
        "quantity": e.quantity,
        "ticket_id": ticket_id,
        "node_id": e.node_id,
        "line": e.line,
        "allocation": e.allocation,
        "actor_id": None,
        "at": at,
        "note": "",
    }


# --- low-stock alerts ---


@dataclass
class _Touched:
    """A stock level changed by the transaction: availability after, net change, reorder settings."""

    available: int
    delta: int
    reorder_point: int
    reorder_qty: int


def _touch(touched: dict[tuple[str, str], _Touched], e: Entry, on_hand: int, reserved: int, delta: int) -> None:
    prev = touched.get((e.warehouse, e.sku))
    touched[(e.warehouse, e.sku)] = _Touched(
        on_hand - reserved, delta + (prev.delta if prev else 0), e.reorder_point, e.reorder_qty
    )


async def _review_alerts(conn: AsyncConnection, touched: dict[tuple[str, str], _Touched], at: datetime) -> None:
    """Open an alert when availability fell below the reorder point — at most one open per
    (warehouse, part): the partial unique index turns a second one into nothing — and close the
    open one when availability rose back to the reorder point or above."""
    for (warehouse, sku), t in sorted(touched.items()):
        if t.delta < 0 and stock.is_low(t.available, t.reorder_point):
            open_alert = (
                upsert_statement(conn.dialect.name, _ALERT)
                .values(
                    warehouse=warehouse,
                    sku=sku,
                    status="open",
                    reorder_point=t.reorder_point,
                    available_at_open=t.available,
                    opened_at=at,
                    suggested_qty=stock.reorder_suggestion(t.available, t.reorder_point, t.reorder_qty),
                )
                .on_conflict_do_nothing(index_elements=["warehouse", "sku"], index_where=sa.text("status = 'open'"))
            )
            await conn.execute(open_alert)
        elif t.delta > 0 and not stock.is_low(t.available, t.reorder_point):
            await conn.execute(_CLOSE_ALERT, {"w": warehouse, "s": sku, "at": at, "available": t.available})


# --- reserve ---


async def _take(conn: AsyncConnection, driver: Any, inp: ReserveInput, e: Entry, at: datetime, guarded: bool) -> Any:
    """The conditional UPDATE for one allocation and, if it took the stock, its ledger row.
    Returns the level's (on_hand, reserved) after, or None when nothing was taken."""
    level = {"w": e.warehouse, "s": e.sku, "n": e.quantity, "at": at}
    row = _ledger_row(inp.ticket_id, e, at)
    if driver is not None:  # PostgreSQL: one statement
        params = {
            **level,
            "key": row["idempotency_key"],
            "t": inp.ticket_id,
            "node": inp.node_id,
            "line": e.line,
            "alloc": e.allocation,
        }
        taken = await _pg_rows(driver, _PG_TAKE[guarded], params)
        return taken[0] if taken else None
    after = (await conn.execute(_RESERVE, level)).first()
    if after is not None:
        await conn.execute(_MOVE.insert(), row)
    return after


async def _reserve(conn: AsyncConnection, inp: ReserveInput, at: datetime) -> ReserveResult:
    """Plan from the candidates, take with conditional UPDATEs, plan again for what concurrent
    takers got first; answer from the entries written (a retry: from those found).

    On PostgreSQL the ticket lock is taken by the first candidate read itself, whose snapshot
    predates the lock: its ``done`` may miss a concurrent attempt of this very reservation that
    committed while we waited. So until one of our takes has succeeded, takes are guarded (nothing
    is taken if the node has reserved by then), and no insufficient answer is given without a
    fresh look at the ledger. Later reads are fresh: the lock is held."""
    driver = (await conn.get_raw_connection()).driver_connection if conn.dialect.name == "postgresql" else None
    location = (inp.location.lat, inp.location.lon) if inp.location else None
    remaining = {i: line.quantity for i, line in enumerate(inp.lines)}
    next_allocation: dict[int, int] = defaultdict(int)
    entries: list[Entry] = []
    touched: dict[tuple[str, str], _Touched] = {}

    async def reserved_before(fresh: bool) -> bool:
        if fresh or driver is None:
            return False  # the candidate read already said
        return (
            await _pg_rows(driver, f"SELECT {_PG_RESERVED_BEFORE} AS done", {"t": inp.ticket_id, "node": inp.node_id})
        )[0].done

    async def answer_from_ledger() -> ReserveResult:
        return stock.reserve_result(inp, await _ledger(conn, inp.ticket_id, inp.node_id))

    for round_ in range(_PLAN_ROUNDS):
        needs = [Need(i, line.sku, remaining[i]) for i, line in enumerate(inp.lines) if remaining[i] > 0]
        if not needs:
            break
        named = inp.warehouses is not None
        params = {
            "region": inp.region,
            "skus": sorted({n.sku for n in needs}),
            "codes": inp.warehouses or [],
            "t": inp.ticket_id,
            "node": inp.node_id,
            "lock": _lock_key(inp.ticket_id),
        }
        if driver is not None:
            rows = await _pg_rows(driver, _PG_CANDIDATES[(named, round_ == 0)], params)
        else:
            rows = (await conn.execute(_CANDIDATES[named], params)).all()
        fresh = driver is None or round_ > 0
        if not entries and rows and rows[0].done:
            return await answer_from_ledger()  # a retry: the first attempt committed
        parts = {r.sku: (r.reorder_point, r.reorder_qty) for r in rows}
        if unknown := sorted(set(params["skus"]) - parts.keys()):
            raise ApplicationError(
                f"unknown part(s): {', '.join(unknown)}", {"skus": unknown}, type=UNKNOWN_PART, non_retryable=True
            )
        sites = [Site(r.warehouse, r.lat, r.lon) for r in rows if r.warehouse is not None]
        available = {(r.warehouse, r.sku): r.available for r in rows if r.warehouse is not None}
        ranked = stock.rank_sites(list({s.code: s for s in sites}.values()), location)
        picks, shorts = stock.plan_reservation(needs, available, ranked, inp.allow_partial)
        if shorts and not inp.allow_partial:
            if not entries and await reserved_before(fresh):
                return await answer_from_ledger()
            raise _Rollback(stock.insufficient(inp, shorts))

        planned: list[Entry] = []  # allocation numbers follow the plan (nearest first)
        for p in picks:
            rp, rq = parts[p.sku]
            planned.append(
                Entry(
                    MovementKind.RESERVATION,
                    inp.node_id,
                    p.line,
                    next_allocation[p.line],
                    p.warehouse,
                    p.sku,
                    p.quantity,
                    rp,
                    rq,
                )
            )
            next_allocation[p.line] += 1
        lost_race = False
        for e in sorted(planned, key=lambda e: (e.warehouse, e.sku, e.line)):  # one lock order for everyone
            after = await _take(conn, driver, inp, e, at, guarded=driver is not None and not entries)
            if after is None:  # taken since we read (guarded: or this node has reserved): plan again
                lost_race = True
                continue
            remaining[e.line] -= e.quantity
            entries.append(e)
            _touch(touched, e, after.on_hand, after.reserved, -e.quantity)
        if not lost_race:
            break

    if not entries and await reserved_before(fresh=False):
        return await answer_from_ledger()
    result = stock.reserve_result(inp, entries)
    if result.status is ReservationStatus.INSUFFICIENT or (result.shortages and not inp.allow_partial):
        raise _Rollback(result.model_copy(update={"status": ReservationStatus.INSUFFICIENT, "allocations": []}))
    await _review_alerts(conn, touched, at)
    return result


async def reserve(db: Database, inp: ReserveInput) -> ReserveResult:
    at = _now()
    return await in_ticket_transaction(db, inp.ticket_id, lambda conn: _reserve(conn, inp, at), work_locks=True)


# --- consume and release ---


async def _settle(
    conn: AsyncConnection, ticket_id: str, split: Iterable[tuple[Entry, int, int]], at: datetime
) -> list[Entry]:
    """For each (allocation, consumed, released): one conditional UPDATE and its ledger rows."""
    written: list[Entry] = []
    touched: dict[tuple[str, str], _Touched] = {}
    for a, consumed, released in sorted(split, key=lambda s: (s[0].warehouse, s[0].sku, s[0].line)):
        params = {"w": a.warehouse, "s": a.sku, "c": consumed, "r": consumed + released, "at": at}
        after = (await conn.execute(_SETTLE, params)).first()
        if after is None:
            raise ApplicationError(
                f"stock level {a.warehouse}/{a.sku} holds less reserved than the ledger of ticket {ticket_id}",
                type=LEDGER_INCONSISTENT,
                non_retryable=True,
            )
        written += [
            a.with_quantity(kind, q)
            for kind, q in ((MovementKind.CONSUMPTION, consumed), (MovementKind.RELEASE, released))
            if q
        ]
        _touch(touched, a, after.on_hand, after.reserved, released)
    if written:
        await conn.execute(_MOVE.insert(), [_ledger_row(ticket_id, e, at) for e in written])
    await _review_alerts(conn, touched, at)
    return written


async def _consume(conn: AsyncConnection, inp: ConsumeInput, at: datetime) -> ConsumeResult:
    found = await _ledger(conn, inp.ticket_id, inp.node_id)
    if any(e.kind == MovementKind.CONSUMPTION for e in found):
        return stock.consume_result(inp, found)  # a retry: the first attempt committed
    used: dict[str, int] = defaultdict(int)
    for u in inp.used:
        used[u.sku] += u.quantity
    split, over = stock.split_usage(stock.outstanding(found), used)
    if over:
        raise ApplicationError(
            f"ticket {inp.ticket_id} node {inp.node_id}: "
            + ", ".join(f"{sku} used {q} > reserved {r}" for sku, (q, r) in over.items()),
            [{"sku": sku, "used": q, "reserved": r} for sku, (q, r) in over.items()],
            type=CONSUMPTION_EXCEEDS_RESERVATION,
            non_retryable=True,
        )
    return stock.consume_result(inp, found + await _settle(conn, inp.ticket_id, split, at))


async def consume(db: Database, inp: ConsumeInput) -> ConsumeResult:
    at = _now()
    return await in_ticket_transaction(db, inp.ticket_id, lambda conn: _consume(conn, inp, at))


async def _release(conn: AsyncConnection, inp: ReleaseInput, at: datetime) -> ReleaseResult:
    found = await _ledger(conn, inp.ticket_id, inp.node_id)
    split = [(a, 0, a.quantity) for a in stock.outstanding(found)]
    return stock.release_result(inp, found + await _settle(conn, inp.ticket_id, split, at))


async def release(db: Database, inp: ReleaseInput) -> ReleaseResult:
    at = _now()
    return await in_ticket_transaction(db, inp.ticket_id, lambda conn: _release(conn, inp, at))


# --- receipts (the API) ---


async def receive(
    into: AsyncConnection | AsyncSession,
    *,
    key: str,
    warehouse: str,
    sku: str,
    quantity: int,
    actor_id: str | None,
    note: str = "",
    at: datetime | None = None,
) -> tuple[int, bool]:
    """Receive ``quantity`` into a warehouse once per ``key`` (the ledger row's idempotency key),
    in the caller's transaction; the caller has checked that the warehouse and the part exist.
    Returns (ledger row id, True), or the earlier row's id and False when the key was used."""
    if quantity <= 0:
        raise ValueError(f"a receipt adds stock: quantity must be > 0, not {quantity}")
    conn = await into.connection() if isinstance(into, AsyncSession) else into
    at = at or _now()
    dialect = conn.dialect.name
    insert = (
        upsert_statement(dialect, _MOVE)
        .values(
            idempotency_key=key,
            kind=MovementKind.RECEIPT.value,
            warehouse=warehouse,
            sku=sku,
            quantity=quantity,
            actor_id=actor_id,
            at=at,
            note=note,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(_MOVE.c.id)
    )
    movement_id = (await conn.execute(insert)).scalar()
    if movement_id is None:
        earlier = await conn.execute(sa.select(_MOVE.c.id).where(_MOVE.c.idempotency_key == key))
        return earlier.scalar_one(), False
    add = upsert_statement(dialect, _LEVEL).values(
        warehouse=warehouse, sku=sku, on_hand=quantity, reserved=0, updated_at=at
    )
    add = add.on_conflict_do_update(
        index_elements=["warehouse", "sku"],
        set_={"on_hand": _LEVEL.c.on_hand + add.excluded.on_hand, "updated_at": add.excluded.updated_at},
    ).returning(_LEVEL.c.on_hand, _LEVEL.c.reserved)
    after = (await conn.execute(add)).one()
    part = (await conn.execute(sa.select(_PART.c.reorder_point, _PART.c.reorder_qty).where(_PART.c.sku == sku))).one()
    touched: dict[tuple[str, str], _Touched] = {}
    e = Entry(MovementKind.RECEIPT, "", 0, 0, warehouse, sku, quantity, part.reorder_point, part.reorder_qty)
    _touch(touched, e, after.on_hand, after.reserved, quantity)
    await _review_alerts(conn, touched, at)
    return movement_id, True


# --- reads (the API): regions are the caller's scope, None for every region ---


def _in_regions(regions: list[str] | None) -> list[Any]:
    return [] if regions is None else [_WH.c.region.in_(regions)]


async def warehouse(session: AsyncSession, code: str) -> Any:
    """The warehouse row (code, name, region, kind, lat, lon), or None."""
    conn = await session.connection()
    return (await conn.execute(sa.select(_WH).where(_WH.c.code == code))).first()


async def part_exists(session: AsyncSession, sku: str) -> bool:
    conn = await session.connection()
    return (await conn.execute(sa.select(_PART.c.sku).where(_PART.c.sku == sku))).first() is not None


_STOCK = (
    sa.select(
        _LEVEL.c.warehouse,
        _WH.c.region,
        _LEVEL.c.sku,
        _PART.c.name.label("part_name"),
        _PART.c.unit,
        _LEVEL.c.on_hand,
        _LEVEL.c.reserved,
        (_LEVEL.c.on_hand - _LEVEL.c.reserved).label("available"),
        _PART.c.reorder_point,
        _LEVEL.c.updated_at,
    )
    .join(_WH, _WH.c.code == _LEVEL.c.warehouse)
    .join(_PART, _PART.c.sku == _LEVEL.c.sku)
)


async def stock_levels(
    session: AsyncSession,
    regions: list[str] | None,
    *,
    warehouse: str | None = None,
    sku: str | None = None,
    region: str | None = None,
    low_only: bool = False,
    limit: int,
    offset: int,
) -> list[Any]:
    """Rows of ``_STOCK`` (warehouse, region, sku, part_name, unit, on_hand, reserved, available,
    reorder_point, updated_at) by warehouse and SKU: at most ``limit + 1`` from ``offset``."""
    conn = await session.connection()
    q = _STOCK.where(*_in_regions(regions))
    if warehouse is not None:
        q = q.where(_LEVEL.c.warehouse == warehouse)
    if sku is not None:
        q = q.where(_LEVEL.c.sku == sku)
    if region is not None:
        q = q.where(_WH.c.region == region)
    if low_only:
        q = q.where(_LEVEL.c.on_hand - _LEVEL.c.reserved < _PART.c.reorder_point)
    return list(
        (await conn.execute(q.order_by(_LEVEL.c.warehouse, _LEVEL.c.sku).limit(limit + 1).offset(offset))).all()
    )


async def stock_level(session: AsyncSession, warehouse: str, sku: str) -> Any:
    conn = await session.connection()
    return (await conn.execute(_STOCK.where(_LEVEL.c.warehouse == warehouse, _LEVEL.c.sku == sku))).one()


async def movement(session: AsyncSession, movement_id: int) -> dict[str, Any]:
    conn = await session.connection()
    return dict((await conn.execute(sa.select(_MOVE).where(_MOVE.c.id == movement_id))).one()._mapping)


async def movements(
    session: AsyncSession,
    regions: list[str] | None,
    *,
    ticket_id: str | None = None,
    sku: str | None = None,
    warehouse: str | None = None,
    kind: str | None = None,
    limit: int,
    after: keyset.Key | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Ledger rows, newest first, keyset-paged on the id."""
    conn = await session.connection()
    q = sa.select(_MOVE).join(_WH, _WH.c.code == _MOVE.c.warehouse).where(*_in_regions(regions))
    for column, value in (
        (_MOVE.c.ticket_id, ticket_id),
        (_MOVE.c.sku, sku),
        (_MOVE.c.warehouse, warehouse),
        (_MOVE.c.kind, kind),
    ):
        if value is not None:
            q = q.where(column == value)
    if after is not None:
        q = q.where(keyset.before([_MOVE.c.id], after))
    rows = [dict(r._mapping) for r in await conn.execute(q.order_by(_MOVE.c.id.desc()).limit(limit + 1))]
    return keyset.page(rows, limit, lambda r: (r["id"],))


async def alerts(
    session: AsyncSession,
    regions: list[str] | None,
    *,
    status: str | None = None,
    warehouse: str | None = None,
    sku: str | None = None,
    region: str | None = None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Alerts with their warehouse's region and part name, newest first: at most ``limit + 1``
    from ``offset``."""
    conn = await session.connection()
    q = (
        sa.select(_ALERT, _WH.c.region, _PART.c.name.label("part_name"))
        .join(_WH, _WH.c.code == _ALERT.c.warehouse)
        .join(_PART, _PART.c.sku == _ALERT.c.sku)
        .where(*_in_regions(regions))
    )
    for column, value in ((_ALERT.c.warehouse, warehouse), (_ALERT.c.sku, sku), (_WH.c.region, region)):
        if value is not None:
            q = q.where(column == value)
    if status is not None:
        q = q.where(_ALERT.c.status == status)
    rows = await conn.execute(q.order_by(_ALERT.c.id.desc()).limit(limit + 1).offset(offset))
    return [dict(r._mapping) for r in rows]


async def parts(session: AsyncSession) -> list[dict[str, Any]]:
    conn = await session.connection()
    return [dict(r._mapping) for r in await conn.execute(sa.select(_PART).order_by(_PART.c.sku))]


async def warehouses(
    session: AsyncSession, regions: list[str] | None, region: str | None = None
) -> list[dict[str, Any]]:
    conn = await session.connection()
    q = sa.select(_WH).where(*_in_regions(regions))
    if region is not None:
        q = q.where(_WH.c.region == region)
    return [dict(r._mapping) for r in await conn.execute(q.order_by(_WH.c.code))]


# --- low-stock alerts to announce (inventory.announce_low_stock) ---


async def unannounced_alerts(db: Database, limit: int = 100) -> list[tuple[StockAlert, Warehouse]]:
    """Open alerts nobody has been told of yet, oldest first, with their warehouse."""
    async with db.session() as session:
        q = (
            select(StockAlert, Warehouse)
            .join(Warehouse, col(Warehouse.code) == col(StockAlert.warehouse))
            .where(col(StockAlert.status) == "open", col(StockAlert.notified_at).is_(None))
            .order_by(col(StockAlert.id))
            .limit(limit)
        )
        return [(alert, wh) for alert, wh in (await session.exec(q)).all()]


async def mark_announced(db: Database, alert_id: int | None) -> None:
    """Stamp ``notified_at`` (once: an alert announced meanwhile keeps its first time)."""
    async with db.session() as session:
        row = await session.get(StockAlert, alert_id)
        if row is not None and row.notified_at is None:
            row.notified_at = datetime.now(UTC)
            session.add(row)
            await session.commit()
