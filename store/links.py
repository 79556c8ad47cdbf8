"""Tickets that belong together: every query on ``ticket_link`` (duplicate of, related to, caused
by; merges), and the rows of several tickets at once (a link's other end, a parent's children).
Nothing here commits: the caller does (``api/services/links.py``, ``activities/children.py``).
"""

from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.link_tables import DUPLICATE_OF, TicketLink
from models.tables import Ticket

LISTED = 200  # links of one ticket listed at most (oldest first)
MAX_CHAIN = 20  # duplicate_of links followed at most from one ticket to its final master
LINK = cast(sa.Table, TicketLink.__table__)  # type: ignore[attr-defined]


def add(session: AsyncSession, row: TicketLink) -> None:
    session.add(row)


async def delete(session: AsyncSession, row: TicketLink) -> None:
    await session.delete(row)


async def get(session: AsyncSession, ticket_id: str, link_id: str) -> TicketLink | None:
    """The link ``link_id`` if ``ticket_id`` is one of its ends."""
    row = await session.get(TicketLink, link_id)
    return row if row is not None and ticket_id in (row.ticket_id, row.target_id) else None


async def find(session: AsyncSession, ticket_id: str, target_id: str, kind: str) -> TicketLink | None:
    q = select(TicketLink).where(
        TicketLink.ticket_id == ticket_id, TicketLink.target_id == target_id, TicketLink.kind == kind
    )
    return (await session.exec(q)).first()


async def master_link(session: AsyncSession, ticket_id: str) -> TicketLink | None:
    """The ticket's ``duplicate_of`` link (a ticket is the duplicate of one master at most)."""
    q = select(TicketLink).where(TicketLink.ticket_id == ticket_id, TicketLink.kind == DUPLICATE_OF)
    return (await session.exec(q)).first()


async def of_ticket(session: AsyncSession, ticket_id: str) -> list[TicketLink]:
    """Links from and to the ticket, oldest first."""
    q = (
        select(TicketLink)
        .where(or_(TicketLink.ticket_id == ticket_id, TicketLink.target_id == ticket_id))
        .order_by(col(TicketLink.created_at), col(TicketLink.id))
        .limit(LISTED)
    )
    return list((await session.exec(q)).all())


async def masters(session: AsyncSession, ticket_id: str, *, merged_only: bool = False) -> list[str]:
    """The chain of masters above ``ticket_id`` (its master, that one's master, …) in one
    recursive query, nearest first, at most ``MAX_CHAIN`` long; ``merged_only`` follows merges
    only (where a merged ticket's events go)."""
    wanted: list[Any] = [LINK.c.kind == DUPLICATE_OF]
    if merged_only:
        wanted.append(LINK.c.merged.is_(True))
    first = sa.select(LINK.c.target_id, sa.literal(1).label("depth")).where(LINK.c.ticket_id == ticket_id, *wanted)
    chain = first.cte("chain", recursive=True)
    step = (
        sa.select(LINK.c.target_id, (chain.c.depth + 1).label("depth"))
        .join(chain, LINK.c.ticket_id == chain.c.target_id)
        .where(chain.c.depth < MAX_CHAIN, *wanted)
    )
    chain = chain.union_all(step)
    rows = await session.exec(sa.select(chain.c.target_id).order_by(chain.c.depth))  # type: ignore[call-overload]
    return [r[0] for r in rows.all()]


async def tickets(session: AsyncSession, ids: Sequence[str]) -> dict[str, Ticket]:
    """The rows of the tickets ``ids`` that exist, by id, in one query."""
    if not ids:
        return {}
    q = select(Ticket).where(col(Ticket.id).in_(list(ids))).execution_options(populate_existing=True)
    return {row.id: row for row in (await session.exec(q)).all()}
