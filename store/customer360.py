"""The customer 360's queries: each reads one part of a customer's picture for every record of
its merge family at once, bounded by a limit, so that the whole view is a fixed number of
statements however many tickets, assets, orders, contracts or merged records the customer has
(``api/services/customer360.py`` puts them together; docs/assets.md counts them).

Merges are followed with recursive queries — one statement whatever the depth — with the rules
of ``store/customers.py`` (``get`` follows ``merged_into`` up to the survivor, ``family`` is the
survivor and every record merged into it), bounded by the same ``MAX_MERGE_DEPTH``.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.customer_tables import Asset, Customer, CustomerIdentity, CustomerOrder
from models.tables import UTC_DATETIME, Region, Ticket
from store.customers import MAX_MERGE_DEPTH

_customer = sa.table("customer", sa.column("id"), sa.column("merged_into"))


async def survivors(session: AsyncSession, customer_ids: list[str]) -> dict[str, tuple[Customer, str]]:
    """Each id → (the customer it is, or was merged into, following the chain; that customer's
    region's timezone). Unknown ids are left out. One statement."""
    if not customer_ids:
        return {}
    c = _customer.alias("c")
    up = (
        select(
            c.c.id.label("start"),
            c.c.id.label("id"),
            c.c.merged_into.label("merged_into"),
            sa.literal(0).label("depth"),
        )
        .where(c.c.id.in_(customer_ids))
        .cte("up", recursive=True)
    )
    step = _customer.alias("s")
    up = up.union_all(
        select(up.c.start, step.c.id, step.c.merged_into, up.c.depth + 1).where(
            step.c.id == up.c.merged_into, up.c.depth < MAX_MERGE_DEPTH
        )
    )
    q = (
        select(up.c.start, Customer, Region.timezone)
        .join(Customer, col(Customer.id) == up.c.id)
        .join(Region, col(Region.code) == col(Customer.region))
        .where(up.c.merged_into.is_(None))
    )
    return {start: (row, tz) for start, row, tz in (await session.exec(q)).all()}


async def families(session: AsyncSession, customer_ids: list[str]) -> dict[str, list[str]]:
    """Each id → it and every record merged into it, directly or through another merge (the id
    first). One statement."""
    if not customer_ids:
        return {}
    c = _customer.alias("c")
    down = (
        select(c.c.id.label("root"), c.c.id.label("id"), sa.literal(0).label("depth"))
        .where(c.c.id.in_(customer_ids))
        .cte("down", recursive=True)
    )
    step = _customer.alias("s")
    down = down.union_all(
        select(down.c.root, step.c.id, down.c.depth + 1).where(
            step.c.merged_into == down.c.id, down.c.depth < MAX_MERGE_DEPTH
        )
    )
    out: dict[str, list[str]] = {i: [i] for i in customer_ids}
    rows = await session.exec(select(down.c.root, down.c.id).order_by(down.c.depth, down.c.id))
    for root, member in rows.all():
        if root in out and member not in out[root]:
            out[root].append(member)
    return out


async def identities(session: AsyncSession, family: list[str], limit: int) -> list[CustomerIdentity]:
    q = (
        select(CustomerIdentity)
        .where(col(CustomerIdentity.customer_id).in_(family))
        .order_by(col(CustomerIdentity.kind), col(CustomerIdentity.id))
        .limit(limit)
    )
    return list((await session.exec(q)).all())


TICKET_COLUMNS = (
    Ticket.id,
    Ticket.ticket_type,
    Ticket.title,
    Ticket.status,
    Ticket.asset_id,
    Ticket.created_at,
    Ticket.closed_at,
    Ticket.satisfaction,
)


def _tickets_of(family: list[str], regions: list[str] | None, exclude: str | None) -> list[Any]:
    conditions: list[Any] = [col(Ticket.customer_id).in_(family)]
    if regions is not None:
        conditions.append(col(Ticket.region).in_(regions))
    if exclude is not None:
        conditions.append(col(Ticket.id) != exclude)
    return conditions


async def tickets(
    session: AsyncSession, family: list[str], regions: list[str] | None, exclude: str | None, limit: int
) -> list[Any]:
    """The latest tickets (rows of ``TICKET_COLUMNS``, never the snapshot), newest first."""
    q = (
        select(*TICKET_COLUMNS)  # type: ignore[call-overload]  # typed for up to 4 columns
        .where(*_tickets_of(family, regions, exclude))
        .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
        .limit(limit)
    )
    return list((await session.exec(q)).all())


async def satisfaction(
    session: AsyncSession, family: list[str], regions: list[str] | None, exclude: str | None
) -> tuple[int, Decimal | None]:
    """(how many tickets were rated, their mean rating)."""
    q = select(sa.func.count(col(Ticket.satisfaction)), sa.func.avg(col(Ticket.satisfaction))).where(
        *_tickets_of(family, regions, exclude)
    )
    count, mean = (await session.exec(q)).one()
    return int(count), None if mean is None else Decimal(str(mean))


async def latest_ratings(
    session: AsyncSession, family: list[str], regions: list[str] | None, exclude: str | None, limit: int
) -> list[tuple[str, int, datetime]]:
    """(ticket id, rating, closed at — else last changed) of the latest rated tickets."""
    at = sa.func.coalesce(col(Ticket.closed_at), col(Ticket.updated_at), type_=UTC_DATETIME)
    q = (
        select(Ticket.id, Ticket.satisfaction, at)
        .where(*_tickets_of(family, regions, exclude), col(Ticket.satisfaction).is_not(None))
        .order_by(at.desc(), col(Ticket.id).desc())
        .limit(limit)
    )
    return [(i, int(r or 0), a) for i, r, a in (await session.exec(q)).all()]


async def assets(
    session: AsyncSession, family: list[str], regions: list[str] | None, limit: int
) -> list[tuple[Asset, str]]:
    """(asset, its region's timezone), newest first."""
    q = (
        select(Asset, Region.timezone)
        .join(Region, col(Region.code) == col(Asset.region))
        .where(col(Asset.customer_id).in_(family))
        .order_by(col(Asset.created_at).desc(), col(Asset.id).desc())
        .limit(limit)
    )
    if regions is not None:
        q = q.where(col(Asset.region).in_(regions))
    return [(a, tz) for a, tz in (await session.exec(q)).all()]


async def orders(session: AsyncSession, family: list[str], limit: int) -> list[CustomerOrder]:
    """The latest orders, newest first."""
    q = (
        select(CustomerOrder)
        .where(col(CustomerOrder.customer_id).in_(family))
        .order_by(col(CustomerOrder.placed_at).desc(), col(CustomerOrder.id).desc())
        .limit(limit)
    )
    return list((await session.exec(q)).all())
