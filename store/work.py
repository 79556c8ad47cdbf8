"""A person's work: the open tickets where they hold a task, are offered or may claim one, or
sit on an approval (``GET /me/work``, ``api/services/work.py``).

The read model keeps each ticket's state as a JSON snapshot, so the query is a coarse SQL
pre-filter on the snapshot's text (the person's id, ``"role:<r>"``, ``"group:<g>"``) over open
tickets of the caller's regions; ``api/services/work.py`` re-checks every row it lets through.
"""

import json

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import json_text_contains
from models.tables import Region, Ticket
from store.tickets import OPEN_STATUSES

# Rows the pre-filter lets through at most, oldest first: the service says when it stopped there.
MAX_SCAN = 500


def needles(person_id: str, roles: list[str], groups: list[str]) -> list[str]:
    """The JSON strings a snapshot holds when the person may have work in it."""
    values = [person_id, f"user:{person_id}", *(f"role:{r}" for r in roles), *(f"group:{g}" for g in groups)]
    return [json.dumps(v) for v in dict.fromkeys(values)]


async def candidates(
    session: AsyncSession, person_id: str, roles: list[str], groups: list[str], regions: list[str] | None
) -> list[Ticket]:
    """Open tickets (of ``regions``; None: every region) with an active node whose snapshot text
    names the person, one of their roles or one of their groups: at most ``MAX_SCAN + 1``,
    oldest first."""
    if regions is not None and not regions:
        return []
    q = select(Ticket).where(
        col(Ticket.status).in_(OPEN_STATUSES),
        col(Ticket.active_nodes) != "",
        sa.or_(*(json_text_contains(Ticket.snapshot, n) for n in needles(person_id, roles, groups))),
    )
    if regions is not None:
        q = q.where(col(Ticket.region).in_(regions))
    q = q.order_by(col(Ticket.created_at), col(Ticket.id)).limit(MAX_SCAN + 1)
    return list(await session.exec(q))


async def regions(session: AsyncSession, codes: list[str]) -> dict[str, Region]:
    """The region rows of ``codes`` (their business calendars), by code."""
    if not codes:
        return {}
    rows = await session.exec(select(Region).where(col(Region.code).in_(codes)))
    return {r.code: r for r in rows}
