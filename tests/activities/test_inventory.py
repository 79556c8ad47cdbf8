"""Inventory activities against the real database: nearest warehouse, partial vs all-or-nothing,
idempotent retries, cancel compensation, low-stock alerts, and no oversell under concurrency
(PostgreSQL). Every test makes its own warehouses and parts (uuid suffix): the database is shared."""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.inventory import consume_parts, release_parts, reserve_parts
from domain.stock import Need, plan_reservation, reorder_suggestion
from models.db import Database
from models.inventory import (
    DEMO_STOCK,
    Allocation,
    ConsumeInput,
    ConsumeResult,
    Location,
    PartLine,
    ReleaseInput,
    ReleaseResult,
    ReservationStatus,
    ReserveInput,
    ReserveResult,
    Shortage,
    UsedPart,
)
from models.inventory_tables import Part, StockAlert, StockLevel, StockMovement, Warehouse
from store import demo, inventory

# Real sites (lat, lon).
PUDONG = (31.2215, 121.5440)  # Shanghai Pudong warehouse
JIADING = (31.3747, 121.2655)  # Shanghai Jiading warehouse
HANGZHOU = (30.2741, 120.1551)  # Hangzhou warehouse
ZHANGJIANG = Location(lat=31.2040, lon=121.5900)  # a job in Zhangjiang Hi-Tech Park, ~5 km from Pudong
ANTING = Location(lat=31.2966, lon=121.1583)  # a job in Anting, ~13 km from Jiading
XIAOSHAN = Location(lat=30.1850, lon=120.2650)  # a job in Xiaoshan, ~15 km from Hangzhou


@dataclass
class World:
    """Warehouses and parts of one test: short names map to unique codes."""

    region: str
    wh: dict[str, str] = field(default_factory=dict)
    sku: dict[str, str] = field(default_factory=dict)


def uid() -> str:
    return uuid.uuid4().hex[:8].upper()


async def world(
    db: Database,
    warehouses: dict[str, tuple[float, float]],
    parts: dict[str, tuple[int, int]],
    stock: dict[tuple[str, str], int],
    region: str = "east",
    project: tuple[str, ...] = (),
) -> World:
    """Create warehouses {name: (lat, lon)}, parts {name: (reorder_point, reorder_qty)} and receive stock."""
    w = World(region=region)
    suffix = uid()
    async with db.session() as s:
        for name, (lat, lon) in warehouses.items():
            w.wh[name] = f"T{name}-{suffix}"
            kind = "project" if name in project else "regional"
            s.add(Warehouse(code=w.wh[name], name=name, region=region, kind=kind, lat=lat, lon=lon))
        for name, (rp, rq) in parts.items():
            w.sku[name] = f"{name}-{suffix}"
            s.add(Part(sku=w.sku[name], name=name, unit_price=Decimal("10.00"), reorder_point=rp, reorder_qty=rq))
        await s.commit()
    for (wname, pname), qty in stock.items():
        await receive(db, w, wname, pname, qty)
    return w


async def receive(db: Database, w: World, wname: str, pname: str, qty: int) -> None:
    async with db.engine.begin() as conn:
        await inventory.receive(
            conn, key=f"test:{uid()}", warehouse=w.wh[wname], sku=w.sku[pname], quantity=qty, actor_id="test"
        )


async def levels(db: Database, w: World) -> dict[tuple[str, str], tuple[int, int]]:
    """{(warehouse name, part name): (on_hand, reserved)}"""
    names = {code: n for n, code in w.wh.items()}
    parts = {sku: n for n, sku in w.sku.items()}
    t = StockLevel.__table__
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.c.warehouse, t.c.sku, t.c.on_hand, t.c.reserved).where(t.c.warehouse.in_(list(names)))
        )
        return {(names[r.warehouse], parts[r.sku]): (r.on_hand, r.reserved) for r in rows}


async def ledger(db: Database, ticket_id: str) -> list[tuple[str, str, int]]:
    """[(kind, sku, quantity)] of a ticket, in order."""
    t = StockMovement.__table__
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.c.kind, t.c.sku, t.c.quantity).where(t.c.ticket_id == ticket_id).order_by(t.c.id)
        )
        return [tuple(r) for r in rows]


async def alerts(db: Database, w: World, wname: str, pname: str) -> list[StockAlert]:
    t = StockAlert.__table__
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t).where(t.c.warehouse == w.wh[wname], t.c.sku == w.sku[pname]).order_by(t.c.id)
        )
        return [StockAlert(**r._mapping) for r in rows]


async def ledger_balance(db: Database, warehouse: str, sku: str) -> tuple[int, int]:
    """(on_hand, reserved) as the ledger alone says."""
    t = StockMovement.__table__
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(t.c.kind, t.c.quantity).where(t.c.warehouse == warehouse, t.c.sku == sku))
        ).all()
    on_hand = sum(q for k, q in rows if k in ("receipt", "adjustment", "transfer")) - sum(
        q for k, q in rows if k == "consumption"
    )
    reserved = sum(q for k, q in rows if k == "reservation") - sum(
        q for k, q in rows if k in ("release", "consumption")
    )
    return on_hand, reserved


def ticket() -> str:
    return f"T{uid()}{uid()}"


def reserve_input(
    w: World,
    tid: str,
    lines: dict[str, int],
    *,
    node: str = "reserve_parts",
    location: Location | None = None,
    allow_partial: bool = False,
    **kw,
) -> ReserveInput:
    return ReserveInput(
        ticket_id=tid,
        node_id=node,
        region=w.region,
        location=location,
        lines=[PartLine(sku=w.sku[p], quantity=q) for p, q in lines.items()],
        allow_partial=allow_partial,
        **kw,
    )


# --- nearest warehouse ---


async def test_nearest_warehouse_that_has_the_part_by_real_distance(db: Database):
    w = await world(
        db,
        {"PD": PUDONG, "JD": JIADING, "HZ": HANGZHOU},
        {"FAN": (0, 0), "SEAL": (0, 0)},
        {("PD", "FAN"): 5, ("JD", "FAN"): 5, ("HZ", "FAN"): 5, ("JD", "SEAL"): 5, ("HZ", "SEAL"): 5},
    )
    env = ActivityEnvironment()
    cases = [
        (ZHANGJIANG, "FAN", "PD"),
        (ANTING, "FAN", "JD"),
        (XIAOSHAN, "FAN", "HZ"),
        (ZHANGJIANG, "SEAL", "JD"),  # Pudong has none: the next nearest that has it
        (None, "SEAL", "HZ"),  # no location: by warehouse code (THZ- < TJD-)
    ]
    for location, part, expected in cases:
        r = await env.run(reserve_parts, reserve_input(w, ticket(), {part: 1}, location=location))
        assert r.status is ReservationStatus.RESERVED
        assert r.allocations == [Allocation(line=0, sku=w.sku[part], warehouse=w.wh[expected], quantity=1)], (
            location,
            part,
        )


async def test_equal_distance_ties_go_to_the_lower_code_and_project_stock_only_when_named(db: Database):
    w = await world(
        db,
        {"B": PUDONG, "A": PUDONG, "P": PUDONG},
        {"FAN": (0, 0)},
        {("A", "FAN"): 3, ("B", "FAN"): 3, ("P", "FAN"): 3},
        project=("P",),
    )
    r = await ActivityEnvironment().run(reserve_parts, reserve_input(w, ticket(), {"FAN": 1}, location=ZHANGJIANG))
    assert r.allocations[0].warehouse == w.wh["A"]
    # Regional warehouses hold 3 + 3: asking for 7 is short although the project warehouse has 3 more.
    r = await inventory.reserve(db, reserve_input(w, ticket(), {"FAN": 7}, allow_partial=True))
    assert r.status is ReservationStatus.PARTIAL and r.shortages[0].missing == 2
    assert {a.warehouse for a in r.allocations} == {w.wh["A"], w.wh["B"]}
    r = await inventory.reserve(db, reserve_input(w, ticket(), {"FAN": 3}, warehouses=[w.wh["P"]]))
    assert r.allocations == [Allocation(line=0, sku=w.sku["FAN"], warehouse=w.wh["P"], quantity=3)]


# --- partial vs all-or-nothing ---


async def test_all_or_nothing_reserves_nothing_when_one_line_is_short(db: Database):
    w = await world(
        db,
        {"PD": PUDONG, "JD": JIADING},
        {"FAN": (0, 0), "SENSOR": (0, 0)},
        {("PD", "FAN"): 4, ("PD", "SENSOR"): 6, ("JD", "SENSOR"): 6},
    )
    tid = ticket()
    r = await inventory.reserve(db, reserve_input(w, tid, {"FAN": 2, "SENSOR": 10}, location=ZHANGJIANG))
    # 12 sensors in the region, but no single warehouse has 10: without allow_partial a line is never split.
    assert r.status is ReservationStatus.INSUFFICIENT and r.allocations == []
    assert r.shortages == [Shortage(line=1, sku=w.sku["SENSOR"], requested=10, missing=4)]
    assert await ledger(db, tid) == []
    assert await levels(db, w) == {("PD", "FAN"): (4, 0), ("PD", "SENSOR"): (6, 0), ("JD", "SENSOR"): (6, 0)}

    # Once stock arrives, the same ticket and node can reserve (nothing was recorded for the node).
    await receive(db, w, "JD", "SENSOR", 4)
    r = await inventory.reserve(db, reserve_input(w, tid, {"FAN": 2, "SENSOR": 10}, location=ZHANGJIANG))
    assert r.status is ReservationStatus.RESERVED and r.shortages == []
    assert [(a.line, a.warehouse, a.quantity) for a in r.allocations] == [(0, w.wh["PD"], 2), (1, w.wh["JD"], 10)]


async def test_partial_splits_a_line_nearest_first_and_reports_the_shortage(db: Database):
    w = await world(
        db,
        {"PD": PUDONG, "JD": JIADING, "HZ": HANGZHOU},
        {"FAN": (0, 0), "SEAL": (0, 0)},
        {("PD", "FAN"): 6, ("JD", "FAN"): 3},
    )
    tid = ticket()
    r = await inventory.reserve(
        db, reserve_input(w, tid, {"FAN": 10, "SEAL": 2}, location=ZHANGJIANG, allow_partial=True)
    )
    assert r.status is ReservationStatus.PARTIAL
    assert [(a.line, a.warehouse, a.quantity) for a in r.allocations] == [(0, w.wh["PD"], 6), (0, w.wh["JD"], 3)]
    assert r.shortages == [
        Shortage(line=0, sku=w.sku["FAN"], requested=10, missing=1),
        Shortage(line=1, sku=w.sku["SEAL"], requested=2, missing=2),
    ]
    assert (await levels(db, w))[("PD", "FAN")] == (6, 6)
    assert (await levels(db, w))[("JD", "FAN")] == (3, 3)
    # Nothing left anywhere: partial with nothing to take is "insufficient", and records nothing.
    other = ticket()
    r = await inventory.reserve(db, reserve_input(w, other, {"FAN": 1}, allow_partial=True))
    assert r.status is ReservationStatus.INSUFFICIENT and r.allocations == []
    assert await ledger(db, other) == []


def test_planner_shares_availability_between_lines_of_the_same_part():
    avail = {("A", "X"): 5, ("B", "X"): 5}
    picks, shorts = plan_reservation([Need(0, "X", 4), Need(1, "X", 4)], avail, ["A", "B"], allow_partial=False)
    assert [(p.line, p.warehouse, p.quantity) for p in picks] == [(0, "A", 4), (1, "B", 4)] and shorts == []
    picks, shorts = plan_reservation([Need(0, "X", 4), Need(1, "X", 7)], avail, ["A", "B"], allow_partial=True)
    assert [(p.line, p.warehouse, p.quantity) for p in picks] == [(0, "A", 4), (1, "A", 1), (1, "B", 5)]
    assert [(s.line, s.missing) for s in shorts] == [(1, 1)]
    assert reorder_suggestion(available=3, reorder_point=10, reorder_qty=20) == 27


async def test_unknown_part_is_a_non_retryable_business_error(db: Database):
    w = await world(db, {"PD": PUDONG}, {"FAN": (0, 0)}, {("PD", "FAN"): 1})
    inp = reserve_input(w, ticket(), {"FAN": 1})
    inp = inp.model_copy(update={"lines": [*inp.lines, PartLine(sku=f"NOPE-{uid()}", quantity=1)]})
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(reserve_parts, inp)
    assert err.value.type == "UnknownPart" and err.value.non_retryable
    assert await levels(db, w) == {("PD", "FAN"): (1, 0)}


# --- idempotent retries (the transaction committed, the reply was lost: the activity runs again) ---


async def test_reservation_retried_after_commit_moves_stock_once_and_answers_the_same(db: Database):
    w = await world(
        db,
        {"PD": PUDONG, "JD": JIADING},
        {"FAN": (0, 0), "SEAL": (0, 0)},
        {("PD", "FAN"): 3, ("JD", "FAN"): 5, ("PD", "SEAL"): 5},
    )
    tid = ticket()
    env = ActivityEnvironment()
    inp = reserve_input(w, tid, {"FAN": 4, "SEAL": 2}, location=ZHANGJIANG, allow_partial=True)
    first = await env.run(reserve_parts, inp)
    second = await env.run(reserve_parts, inp)
    assert first == second and first.status is ReservationStatus.RESERVED
    assert [(a.line, a.warehouse, a.quantity) for a in first.allocations] == [
        (0, w.wh["PD"], 3),
        (0, w.wh["JD"], 1),
        (1, w.wh["PD"], 2),
    ]
    assert await levels(db, w) == {("PD", "FAN"): (3, 3), ("JD", "FAN"): (5, 1), ("PD", "SEAL"): (5, 2)}
    assert len(await ledger(db, tid)) == 3
    # Concurrent attempts of the same reservation (a retry racing a slow first attempt): still once.
    tid2 = ticket()
    inp2 = reserve_input(w, tid2, {"FAN": 2}, location=ANTING)
    results = await asyncio.gather(*[inventory.reserve(db, inp2) for _ in range(5)])
    assert all(r == results[0] for r in results) and results[0].status is ReservationStatus.RESERVED
    assert await levels(db, w) == {("PD", "FAN"): (3, 3), ("JD", "FAN"): (5, 3), ("PD", "SEAL"): (5, 2)}
    assert await ledger(db, tid2) == [("reservation", w.sku["FAN"], 2)]


async def test_consume_uses_what_was_used_releases_the_rest_and_a_retry_changes_nothing(db: Database):
    w = await world(
        db,
        {"PD": PUDONG, "JD": JIADING},
        {"FAN": (0, 0), "SEAL": (0, 0)},
        {("PD", "FAN"): 3, ("JD", "FAN"): 5, ("PD", "SEAL"): 5},
    )
    tid = ticket()
    env = ActivityEnvironment()
    await env.run(reserve_parts, reserve_input(w, tid, {"FAN": 4, "SEAL": 2}, location=ZHANGJIANG, allow_partial=True))
    inp = ConsumeInput(
        ticket_id=tid,
        node_id="reserve_parts",
        used=[UsedPart(sku=w.sku["FAN"], quantity=2), UsedPart(sku=w.sku["FAN"], quantity=1)],
    )
    first = await env.run(consume_parts, inp)
    second = await env.run(consume_parts, inp)
    assert first == second
    # 3 fans used, taken from the first allocation (Pudong 3); Jiading's 1 and both seals go back.
    assert [(q.warehouse, q.sku, q.quantity) for q in first.consumed] == [(w.wh["PD"], w.sku["FAN"], 3)]
    assert sorted((q.warehouse, q.sku, q.quantity) for q in first.released) == sorted(
        [(w.wh["JD"], w.sku["FAN"], 1), (w.wh["PD"], w.sku["SEAL"], 2)]
    )
    assert await levels(db, w) == {("PD", "FAN"): (0, 0), ("JD", "FAN"): (5, 0), ("PD", "SEAL"): (5, 0)}
    assert await ledger_balance(db, w.wh["PD"], w.sku["FAN"]) == (0, 0)
    kinds = [k for k, _, _ in await ledger(db, tid)]
    assert sorted(kinds) == ["consumption", "release", "release", "reservation", "reservation", "reservation"]
    # A cancel after completion has nothing left to release.
    released = await env.run(release_parts, ReleaseInput(ticket_id=tid))
    assert len(await ledger(db, tid)) == 6 and {q.sku for q in released.released} == {w.sku["FAN"], w.sku["SEAL"]}


async def test_using_more_than_reserved_is_a_non_retryable_error_and_moves_nothing(db: Database):
    w = await world(db, {"PD": PUDONG}, {"FAN": (0, 0), "SEAL": (0, 0)}, {("PD", "FAN"): 5, ("PD", "SEAL"): 5})
    tid = ticket()
    await inventory.reserve(db, reserve_input(w, tid, {"FAN": 2}))
    env = ActivityEnvironment()
    for used in ([UsedPart(sku=w.sku["FAN"], quantity=3)], [UsedPart(sku=w.sku["SEAL"], quantity=1)]):
        with pytest.raises(ApplicationError) as err:
            await env.run(consume_parts, ConsumeInput(ticket_id=tid, node_id="reserve_parts", used=used))
        assert err.value.type == "ConsumptionExceedsReservation" and err.value.non_retryable
    assert await levels(db, w) == {("PD", "FAN"): (5, 2), ("PD", "SEAL"): (5, 0)}
    assert len(await ledger(db, tid)) == 1


async def test_cancelled_ticket_releases_every_reservation_once(db: Database):
    w = await world(
        db,
        {"PD": PUDONG, "JD": JIADING},
        {"FAN": (0, 0), "SEAL": (0, 0)},
        {("PD", "FAN"): 2, ("JD", "FAN"): 4, ("PD", "SEAL"): 3},
    )
    tid = ticket()
    await inventory.reserve(
        db, reserve_input(w, tid, {"FAN": 3}, node="reserve_1", location=ZHANGJIANG, allow_partial=True)
    )
    await inventory.reserve(db, reserve_input(w, tid, {"SEAL": 3}, node="reserve_2"))
    assert await levels(db, w) == {("PD", "FAN"): (2, 2), ("JD", "FAN"): (4, 1), ("PD", "SEAL"): (3, 3)}

    env = ActivityEnvironment()
    only_one = await env.run(release_parts, ReleaseInput(ticket_id=tid, node_id="reserve_2"))
    assert [(q.node_id, q.quantity) for q in only_one.released] == [("reserve_2", 3)]
    assert await levels(db, w) == {("PD", "FAN"): (2, 2), ("JD", "FAN"): (4, 1), ("PD", "SEAL"): (3, 0)}

    first = await env.run(release_parts, ReleaseInput(ticket_id=tid))
    second = await env.run(release_parts, ReleaseInput(ticket_id=tid))
    assert first == second
    assert sorted((q.node_id, q.warehouse, q.quantity) for q in first.released) == sorted(
        [("reserve_1", w.wh["PD"], 2), ("reserve_1", w.wh["JD"], 1), ("reserve_2", w.wh["PD"], 3)]
    )
    assert await levels(db, w) == {("PD", "FAN"): (2, 0), ("JD", "FAN"): (4, 0), ("PD", "SEAL"): (3, 0)}
    assert [k for k, _, _ in await ledger(db, tid)].count("release") == 3
    # Nothing reserved at all is fine too; consuming after the cancel finds nothing reserved.
    assert (await inventory.release(db, ReleaseInput(ticket_id=ticket()))).released == []
    with pytest.raises(ApplicationError):
        await inventory.consume(
            db, ConsumeInput(ticket_id=tid, node_id="reserve_1", used=[UsedPart(sku=w.sku["FAN"], quantity=1)])
        )


# --- low-stock alerts ---


async def test_low_stock_alert_is_raised_once_per_crossing_and_cleared(db: Database):
    w = await world(db, {"PD": PUDONG}, {"FAN": (5, 10)}, {("PD", "FAN"): 8})

    async def take(n: int) -> str:
        tid = ticket()
        r = await inventory.reserve(db, reserve_input(w, tid, {"FAN": n}))
        assert r.status is ReservationStatus.RESERVED
        return tid

    await take(2)  # available 6: above the reorder point
    assert await alerts(db, w, "PD", "FAN") == []
    t2 = await take(2)  # available 4 < 5: one alert, order up to 5 + 10
    await take(1)  # available 3: still the same alert
    [a] = await alerts(db, w, "PD", "FAN")
    assert (a.status, a.reorder_point, a.available_at_open, a.suggested_qty, a.notified_at) == ("open", 5, 4, 11, None)

    await inventory.release(db, ReleaseInput(ticket_id=t2))  # available 5: back at the reorder point
    [a] = await alerts(db, w, "PD", "FAN")
    assert (a.status, a.available_at_close) == ("closed", 5) and a.closed_at is not None

    await take(1)  # available 4: a new crossing, a new alert
    history = await alerts(db, w, "PD", "FAN")
    assert [x.status for x in history] == ["closed", "open"]
    await receive(db, w, "PD", "FAN", 20)  # a receipt clears it
    assert [x.status for x in await alerts(db, w, "PD", "FAN")] == ["closed", "closed"]


# --- database guarantees ---


async def test_checks_forbid_negative_or_over_reserved_stock_and_prices_stay_exact(db: Database):
    w = await world(db, {"PD": PUDONG}, {"FAN": (0, 0)}, {("PD", "FAN"): 2})
    t = StockLevel.__table__
    where = (t.c.warehouse == w.wh["PD"]) & (t.c.sku == w.sku["FAN"])
    for values in ({"reserved": 3}, {"on_hand": -1}, {"reserved": -1}):
        with pytest.raises(IntegrityError):
            async with db.engine.begin() as conn:
                await conn.execute(t.update().where(where).values(**values))
    price = Decimal("12345678901234.5678")
    sku = f"PRICE-{uid()}"
    async with db.session() as s:
        s.add(Part(sku=sku, name="precise", unit_price=price))
        await s.commit()
    async with db.session() as s:
        part = await s.get(Part, sku)
        assert part is not None and part.unit_price == price and isinstance(part.unit_price, Decimal)


def test_which_database_errors_run_the_transaction_again():
    import psycopg
    from sqlalchemy.exc import OperationalError

    from store.inventory import _transient

    key_taken = psycopg.errors.UniqueViolation(
        'duplicate key value violates unique constraint "stock_movement_idempotency_key_key"'
    )
    assert _transient(key_taken)  # straight from psycopg (the PostgreSQL hot path)
    assert _transient(IntegrityError("INSERT …", {}, key_taken))  # through SQLAlchemy
    assert _transient(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert _transient(psycopg.errors.SerializationFailure("could not serialize access"))
    assert not _transient(psycopg.errors.CheckViolation('violates check constraint "ck_stock_level_on_hand"'))
    assert not _transient(psycopg.errors.UniqueViolation('duplicate key value violates "part_pkey"'))
    assert not _transient(OperationalError("SELECT 1", {}, Exception("database is locked")))


# --- concurrency (PostgreSQL: SQLite serializes every writer, so there is no race to win) ---


def needs_postgres(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip(
            "needs PostgreSQL (set TICKETFLOW_TEST_DATABASE_URL=postgresql+psycopg://…): "
            "SQLite serializes writers, so concurrent reservations cannot race"
        )


async def test_fifty_concurrent_reservations_for_the_last_ten_units(db: Database):
    needs_postgres(db)
    w = await world(db, {"PD": PUDONG, "JD": JIADING}, {"FAN": (0, 0)}, {("PD", "FAN"): 6, ("JD", "FAN"): 4})
    tickets = [ticket() for _ in range(50)]
    results = await asyncio.gather(
        *[inventory.reserve(db, reserve_input(w, tid, {"FAN": 1}, location=ZHANGJIANG)) for tid in tickets]
    )
    statuses = [r.status for r in results]
    assert statuses.count(ReservationStatus.RESERVED) == 10
    assert statuses.count(ReservationStatus.INSUFFICIENT) == 40
    assert await levels(db, w) == {("PD", "FAN"): (6, 6), ("JD", "FAN"): (4, 4)}
    t = StockMovement.__table__
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(t.c.ticket_id, t.c.warehouse).where(t.c.sku == w.sku["FAN"], t.c.kind == "reservation")
            )
        ).all()
    assert len(rows) == 10
    winners = {tid for tid, r in zip(tickets, results, strict=True) if r.status is ReservationStatus.RESERVED}
    assert {r.ticket_id for r in rows} == winners
    assert sorted(r.warehouse for r in rows) == sorted([w.wh["PD"]] * 6 + [w.wh["JD"]] * 4)
    for name in ("PD", "JD"):
        assert await ledger_balance(db, w.wh[name], w.sku["FAN"]) == (await levels(db, w))[(name, "FAN")]


async def test_concurrent_multi_line_reservations_in_opposite_orders_never_deadlock_or_oversell(db: Database):
    needs_postgres(db)
    w = await world(
        db,
        {"PD": PUDONG, "JD": JIADING},
        {"FAN": (0, 0), "SEAL": (0, 0)},
        {("PD", "FAN"): 16, ("JD", "FAN"): 16, ("PD", "SEAL"): 16, ("JD", "SEAL"): 16},
    )
    inputs = [
        reserve_input(
            w,
            ticket(),
            {"FAN": 2, "SEAL": 2} if i % 2 else {"SEAL": 2, "FAN": 2},
            location=ZHANGJIANG,
            allow_partial=bool(i % 3 == 0),
        )
        for i in range(40)
    ]
    results = await asyncio.gather(*[inventory.reserve(db, inp) for inp in inputs])
    reserved = {
        p: sum(a.quantity for r in results for a in r.allocations if a.sku == w.sku[p]) for p in ("FAN", "SEAL")
    }
    assert reserved == {"FAN": 32, "SEAL": 32}  # 40 tickets want 80 of each, 32 of each exist
    after = await levels(db, w)
    assert all(0 <= res <= on for on, res in after.values())
    assert {p: sum(res for (_, q), (_, res) in after.items() if q == p) for p in ("FAN", "SEAL")} == reserved
    # Consume and release them all: everything returns to a consistent, fully available state.
    await asyncio.gather(*[inventory.release(db, ReleaseInput(ticket_id=inp.ticket_id)) for inp in inputs])
    after = await levels(db, w)
    assert all(res == 0 for _, res in after.values())
    for (wname, pname), level in after.items():
        assert await ledger_balance(db, w.wh[wname], w.sku[pname]) == level


# --- the activities through a real worker: names, payload round trip, business errors ---


class SagaResult(BaseModel):
    reserved: ReserveResult
    consume_error: str
    consumed: ConsumeResult
    released: ReleaseResult


@workflow.defn(sandboxed=False)
class PartsSaga:
    """What the ticket workflow will do: reserve; consume (once too much: a business error, not
    retried); release on cancel. Activities called by name, as a template names them."""

    @workflow.run
    async def run(self, inp: ReserveInput) -> SagaResult:
        opts = {"start_to_close_timeout": timedelta(seconds=20), "retry_policy": RetryPolicy(maximum_attempts=3)}
        reserved = await workflow.execute_activity("inventory.reserve", inp, result_type=ReserveResult, **opts)
        too_much = [UsedPart(sku=a.sku, quantity=a.quantity + 1) for a in reserved.allocations]
        error = ""
        try:
            await workflow.execute_activity(
                "inventory.consume",
                ConsumeInput(ticket_id=inp.ticket_id, node_id=inp.node_id, used=too_much),
                result_type=ConsumeResult,
                **opts,
            )
        except ActivityError as exc:
            assert isinstance(exc.cause, ApplicationError)
            error = f"{exc.cause.type} non_retryable={exc.cause.non_retryable} attempt={exc.retry_state}"
        used = [UsedPart(sku=a.sku, quantity=1) for a in reserved.allocations[:1]]
        consumed = await workflow.execute_activity(
            "inventory.consume",
            ConsumeInput(ticket_id=inp.ticket_id, node_id=inp.node_id, used=used),
            result_type=ConsumeResult,
            **opts,
        )
        released = await workflow.execute_activity(
            "inventory.release", ReleaseInput(ticket_id=inp.ticket_id), result_type=ReleaseResult, **opts
        )
        return SagaResult(reserved=reserved, consume_error=error, consumed=consumed, released=released)


async def test_activities_by_name_through_a_worker_with_the_pydantic_converter(
    db: Database, devserver: WorkflowEnvironment
):
    w = await world(db, {"PD": PUDONG}, {"FAN": (0, 0), "SEAL": (0, 0)}, {("PD", "FAN"): 5, ("PD", "SEAL"): 5})
    queue = f"inv-{uid()}"
    tid = ticket()
    async with Worker(
        devserver.client,
        task_queue=queue,
        workflows=[PartsSaga],
        activities=[reserve_parts, consume_parts, release_parts],
    ):
        result = await devserver.client.execute_workflow(
            PartsSaga.run,
            reserve_input(w, tid, {"FAN": 2, "SEAL": 1}, location=ZHANGJIANG),
            id=f"saga-{tid}",
            task_queue=queue,
        )
    assert result.reserved.status is ReservationStatus.RESERVED and len(result.reserved.allocations) == 2
    assert result.consume_error.startswith("ConsumptionExceedsReservation non_retryable=True")
    assert [(q.sku, q.quantity) for q in result.consumed.consumed] == [(w.sku["FAN"], 1)]
    assert sorted((q.sku, q.quantity) for q in result.consumed.released) == [(w.sku["FAN"], 1), (w.sku["SEAL"], 1)]
    assert await levels(db, w) == {("PD", "FAN"): (4, 0), ("PD", "SEAL"): (5, 0)}
    for part in ("FAN", "SEAL"):
        assert await ledger_balance(db, w.wh["PD"], w.sku[part]) == (await levels(db, w))[("PD", part)]


async def test_demo_inventory_loads_once_and_balances_match_the_ledger(db: Database):
    await demo.load_inventory(db)
    await demo.load_inventory(db)  # again: nothing received twice
    t = StockMovement.__table__
    async with db.engine.connect() as conn:
        keys = (await conn.execute(sa.select(t.c.idempotency_key).where(t.c.idempotency_key.like("demo:%")))).all()
    assert len(keys) == len(DEMO_STOCK)
    async with db.session() as s:
        for warehouse, sku, _qty in DEMO_STOCK:
            level = await s.get(StockLevel, (warehouse, sku))
            assert level is not None and (level.on_hand, level.reserved) == await ledger_balance(db, warehouse, sku)
            assert level.on_hand >= 0 and 0 <= level.reserved <= level.on_hand
        fan = await s.get(Part, "FAN-CMP-120")
        assert fan is not None and fan.unit_price == Decimal("185.0000")


async def test_a_retry_racing_its_first_attempt_is_caught_by_the_guard_or_the_ledger_key(db: Database, monkeypatch):
    """PostgreSQL takes the ticket lock inside the first candidate read, whose snapshot may predate
    a concurrent attempt's commit (a stale ``done``). Replay exactly that: the guard on the take,
    or (guard removed) the unique ledger key plus a new transaction, still move stock once."""
    needs_postgres(db)
    w = await world(db, {"PD": PUDONG}, {"FAN": (0, 0)}, {("PD", "FAN"): 10})
    real_rows = inventory._pg_rows
    stale = {"reads": 0}

    async def first_read_is_stale(driver, sql, params):
        rows = await real_rows(driver, sql, params)
        if "pg_advisory_xact_lock" in sql and stale["reads"]:
            stale["reads"] -= 1
            rows = [r._replace(done=False) for r in rows]
        return rows

    monkeypatch.setattr(inventory, "_pg_rows", first_read_is_stale)
    for guard in (True, False):
        if not guard:
            monkeypatch.setattr(
                inventory, "_PG_TAKE", {True: inventory._PG_TAKE[False], False: inventory._PG_TAKE[False]}
            )
        inp = reserve_input(w, ticket(), {"FAN": 2})
        first = await inventory.reserve(db, inp)
        stale["reads"] = 1
        again = await inventory.reserve(db, inp)
        assert stale["reads"] == 0 and again == first and first.status is ReservationStatus.RESERVED
        assert await ledger(db, inp.ticket_id) == [("reservation", w.sku["FAN"], 2)]
    assert await levels(db, w) == {("PD", "FAN"): (10, 4)}
