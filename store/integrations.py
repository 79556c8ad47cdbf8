"""Business-system events: every query on ``integration_source``, ``integration_mapping``,
``integration_occurrence`` and ``integration_event``, and the ``customer_order`` rows events
write. Rules (signatures, matching, what a repeat does) are ``api/services/integration_events.py``'s.

Two rows make an event count once: ``integration_event`` is unique on (source, event id), and the
``integration_occurrence`` row of a problem is inserted by exactly one first arrival and locked
(``SELECT … FOR UPDATE``; SQLite takes its one write lock) by every later one until its
transaction ends — so a storm of identical events is serialised on one row and counted exactly.
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.customer_tables import CustomerOrder
from models.db import upsert_statement
from models.integration_tables import IntegrationEvent, IntegrationMapping, IntegrationOccurrence, IntegrationSource
from models.integrations import Occurrence
from models.tables import Ticket

_EVENT: sa.Table = IntegrationEvent.__table__  # type: ignore[attr-defined]
_OCC: sa.Table = IntegrationOccurrence.__table__  # type: ignore[attr-defined]
_ORDER: sa.Table = CustomerOrder.__table__  # type: ignore[attr-defined]


# --- sources and mappings ---


async def source(session: AsyncSession, code: str, lock: bool = False) -> IntegrationSource | None:
    q = select(IntegrationSource).where(IntegrationSource.code == code)
    if lock:
        q = q.with_for_update()
    return (await session.exec(q)).first()


def add(session: AsyncSession, row: IntegrationSource | IntegrationMapping) -> None:
    """A new source or mapping version, written with the caller's commit."""
    session.add(row)


async def latest_mapping(session: AsyncSession, code: str) -> IntegrationMapping | None:
    q = (
        select(IntegrationMapping)
        .where(IntegrationMapping.source == code)
        .order_by(col(IntegrationMapping.version).desc())
        .limit(1)
    )
    return (await session.exec(q)).first()


async def mapping_version(session: AsyncSession, code: str, version: int) -> IntegrationMapping | None:
    q = select(IntegrationMapping).where(IntegrationMapping.source == code, IntegrationMapping.version == version)
    return (await session.exec(q)).first()


# --- events ---


async def _dialect(session: AsyncSession) -> str:
    return (await session.connection()).dialect.name


async def claim_event(session: AsyncSession, code: str, event_id: str, type_: str, at: datetime) -> int | None:
    """Insert the event's row (outcome ``rejected`` until the caller sets it, in the same
    transaction); None when the (source, event id) is there already — a concurrent delivery of
    the same event waits here for the first one's transaction to end."""
    insert = upsert_statement(await _dialect(session), _EVENT).values(
        source=code, event_id=event_id, type=type_, received_at=at, outcome="rejected"
    )
    stmt = insert.on_conflict_do_nothing(index_elements=["source", "event_id"]).returning(_EVENT.c.id)
    found: int | None = (await session.exec(stmt)).scalar_one_or_none()
    return found


async def event(session: AsyncSession, code: str, event_id: str, lock: bool = False) -> IntegrationEvent | None:
    q = select(IntegrationEvent).where(IntegrationEvent.source == code, IntegrationEvent.event_id == event_id)
    if lock:
        q = q.with_for_update()
    return (await session.exec(q.execution_options(populate_existing=True))).first()


async def set_event(session: AsyncSession, row_id: int, **values: Any) -> None:
    await session.exec(sa.update(_EVENT).where(_EVENT.c.id == row_id).values(**values))


async def record_rejected(
    session: AsyncSession, code: str, event_id: str, type_: str, at: datetime, detail: dict[str, Any]
) -> IntegrationEvent | None:
    """Record that an event was refused (a later delivery of it is tried again); if it had
    already been taken, that row instead (nothing changed)."""
    insert = upsert_statement(await _dialect(session), _EVENT).values(
        source=code, event_id=event_id, type=type_, received_at=at, outcome="rejected", detail=detail
    )
    stmt = insert.on_conflict_do_update(
        index_elements=["source", "event_id"],
        set_={"detail": detail, "received_at": at},
        where=_EVENT.c.outcome == "rejected",
    ).returning(_EVENT.c.id)
    if (await session.exec(stmt)).scalar_one_or_none() is not None:
        return None
    return await event(session, code, event_id)


# --- occurrences ---


async def insert_occurrence(session: AsyncSession, values: dict[str, Any]) -> bool:
    """The first arrival of a problem inserts its row; False when it is there (or being inserted)."""
    insert = upsert_statement(await _dialect(session), _OCC).values(**values)
    stmt = insert.on_conflict_do_nothing(index_elements=["source", "dedup_key"]).returning(_OCC.c.id)
    return (await session.exec(stmt)).scalar_one_or_none() is not None


async def lock_occurrence(
    session: AsyncSession, code: str, key: str
) -> tuple[IntegrationOccurrence, str | None] | None:
    """The problem's row, locked until the transaction ends (waits for whoever holds it), and the
    status of its current ticket (None while the ticket is not written yet), read once the lock
    is held — so it is as fresh as the row."""
    q = (
        select(IntegrationOccurrence)
        .where(IntegrationOccurrence.source == code, IntegrationOccurrence.dedup_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = (await session.exec(q)).first()
    return None if row is None else (row, await ticket_status(session, row.ticket_id))


async def set_occurrence(session: AsyncSession, row_id: int, **values: Any) -> None:
    await session.exec(sa.update(_OCC).where(_OCC.c.id == row_id).values(**values))


async def drop_occurrence(session: AsyncSession, row_id: int) -> None:
    await session.exec(sa.delete(_OCC).where(_OCC.c.id == row_id))


async def ticket_status(session: AsyncSession, ticket_id: str) -> str | None:
    """The ticket's status in the read model; None while it is not written yet."""
    return (await session.exec(select(Ticket.status).where(Ticket.id == ticket_id))).first()


async def occurrences_for(session: AsyncSession, ticket_id: str) -> list[Occurrence]:
    """What sources reported on a ticket, per source and rule: how many events were added to it,
    when the first and the last came, the last one's id. Two queries, whatever the count."""
    e, conn = _EVENT.c, await session.connection()
    counted = sa.and_(e.ticket_id == ticket_id, e.outcome.in_(("created", "added", "reopened")))
    groups = (
        await conn.execute(
            sa.select(e.source, e.rule, sa.func.count(), sa.func.min(e.received_at), sa.func.max(e.id))
            .where(counted)
            .group_by(e.source, e.rule)
            .order_by(sa.func.min(e.received_at))
        )
    ).all()
    if not groups:
        return []
    last = {
        row.id: row
        for row in (
            await conn.execute(sa.select(e.id, e.event_id, e.received_at).where(e.id.in_([g[4] for g in groups])))
        ).all()
    }
    return [
        Occurrence(
            source=g[0],
            rule=g[1],
            count=g[2],
            first_seen=g[3],
            last_seen=last[g[4]].received_at,
            last_event_id=last[g[4]].event_id,
        )
        for g in groups
    ]


# --- orders ---


async def upsert_order(session: AsyncSession, values: dict[str, Any], family: list[str]) -> bool:
    """Add the order, or update what the event says of it (status, amount…) — never its customer
    or when it was placed — if the stored order is the event's customer's: one of ``family`` (the
    customer and the records merged into it), checked in the same statement. False: the order is
    recorded for another customer, and is left as it is."""
    insert = upsert_statement(await _dialect(session), _ORDER).values(**values)
    keep = {"source", "external_ref", "customer_id", "placed_at"}
    changed = {k: insert.excluded[k] for k in values if k not in keep}
    stmt = (
        insert.on_conflict_do_update(
            index_elements=["source", "external_ref"], set_=changed, where=_ORDER.c.customer_id.in_(family)
        )
        if changed
        else insert.on_conflict_do_nothing(index_elements=["source", "external_ref"])
    )
    if (await session.exec(stmt.returning(_ORDER.c.id))).scalar_one_or_none() is not None:
        return True  # inserted, or updated
    q = select(CustomerOrder.customer_id).where(
        CustomerOrder.source == values["source"], CustomerOrder.external_ref == values["external_ref"]
    )
    return (await session.exec(q)).first() in family
