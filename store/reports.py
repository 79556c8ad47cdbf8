"""The manager reports' queries: aggregates over ``ticket``, ``ticket_event``, ``actor`` and
``survey`` (CSAT) for the regions of a report (``codes``). Every count, sum and mean is a ``GROUP BY`` here; the
tallies, percentiles and totals are ``api/services/reports.py``'s.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.access import ALL_REGIONS
from models.common import TicketStatus
from models.db import json_text_contains
from models.survey_tables import Survey
from models.tables import Actor, Ticket, TicketEventRow
from store.people import mentions
from store.tickets import OPEN_STATUSES, load_query

CsatDimension = Literal["region", "team", "engineer", "ticket_type"]
RESOLVED, CLOSED, CANCELLED = TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value, TicketStatus.CANCELLED.value


def _count_if(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _resolutions(since: datetime, until: datetime) -> Any:
    """Per ticket resolved in the period: its last move into ``resolved`` in the period (a
    comment on a resolved ticket is an event resolved → resolved, not a resolution)."""
    e = TicketEventRow
    return (
        select(col(e.ticket_id).label("ticket_id"), sa.func.max(col(e.at)).label("resolved_at"))
        .where(
            col(e.to_status) == RESOLVED,
            sa.or_(col(e.from_status).is_(None), col(e.from_status) != RESOLVED),
            col(e.at) >= since,
            col(e.at) < until,
        )
        .group_by(col(e.ticket_id))
        .subquery("resolutions")
    )


async def open_counts(session: AsyncSession, codes: list[str]) -> Sequence[Any]:
    """Tickets open or resolved now: rows (region, status, priority, ticket_type, escalation,
    sla_breached, count)."""
    t = Ticket
    dims = (col(t.region), col(t.status), col(t.priority), col(t.ticket_type), col(t.escalation), col(t.sla_breached))
    q = (
        select(*dims, sa.func.count())  # type: ignore[call-overload]  # typed for up to 4 columns
        .where(col(t.region).in_(codes), col(t.status).in_([*OPEN_STATUSES, RESOLVED]))
        .group_by(*dims)
    )
    return (await session.exec(q)).all()


async def created_counts(session: AsyncSession, codes: list[str], since: datetime, until: datetime) -> Sequence[Any]:
    """Tickets created in the period: rows (region, count, breached)."""
    t = Ticket
    created = (
        select(col(t.region), sa.func.count(), _count_if(col(t.sla_breached)))
        .where(col(t.region).in_(codes), col(t.created_at) >= since, col(t.created_at) < until)
        .group_by(col(t.region))
    )
    return (await session.exec(created)).all()


async def ended_counts(session: AsyncSession, codes: list[str], since: datetime, until: datetime) -> Sequence[Any]:
    """Tickets closed or cancelled in the period: rows (region, status, count)."""
    t = Ticket
    ended = (
        select(col(t.region), col(t.status), sa.func.count())
        .where(
            col(t.region).in_(codes),
            col(t.status).in_([CLOSED, CANCELLED]),
            col(t.closed_at) >= since,
            col(t.closed_at) < until,
        )
        .group_by(col(t.region), col(t.status))
    )
    return (await session.exec(ended)).all()


async def resolutions(session: AsyncSession, codes: list[str], since: datetime, until: datetime) -> Sequence[Any]:
    """One row per ticket resolved in the period: (region, created_at, resolved_at)."""
    res = _resolutions(since, until)
    q = (
        select(col(Ticket.region), col(Ticket.created_at), res.c.resolved_at)
        .join(res, res.c.ticket_id == col(Ticket.id))
        .where(col(Ticket.region).in_(codes))
    )
    return (await session.exec(q)).all()


async def status_times(
    session: AsyncSession, codes: list[str], since: datetime, until: datetime, statuses: Sequence[str]
) -> Sequence[Any]:
    """Over the tickets resolved in the period or closed in it, per region: the sum and the
    count of each status's seconds in the snapshot's ``time_in_status`` — rows (region, sum of
    the first status, count of it, sum of the second, …)."""
    res = _resolutions(since, until)
    t = Ticket
    seconds = {s: col(t.snapshot)[("time_in_status", s)].as_float() for s in statuses}
    columns = [agg for s in statuses for agg in (sa.func.sum(seconds[s]), sa.func.count(seconds[s]))]
    q = (
        select(col(t.region), *columns)  # type: ignore[call-overload]  # typed for up to 4 columns
        .where(
            col(t.region).in_(codes),
            sa.or_(
                col(t.id).in_(select(res.c.ticket_id)),
                sa.and_(col(t.status) == CLOSED, col(t.closed_at) >= since, col(t.closed_at) < until),
            ),
        )
        .group_by(col(t.region))
    )
    return (await session.exec(q)).all()


async def workload_people(
    session: AsyncSession, codes: list[str], role: str | None = None, team: str | None = None
) -> Sequence[Any]:
    """Active people whose regions' text names one of ``codes`` (or every region), of ``role``
    and ``team``: rows (id, name, team, roles, regions, capacity). The JSON filters are coarse:
    the caller checks the lists."""
    a = Actor
    columns = (col(a.id), col(a.name), col(a.team), col(a.roles), col(a.regions), col(a.capacity))
    q = select(*columns).where(  # type: ignore[call-overload]  # typed for up to 4 columns
        col(a.active).is_(True),
        mentions(a.regions, [*codes, ALL_REGIONS]),
    )
    if team is not None:
        q = q.where(col(a.team) == team)
    if role is not None:
        q = q.where(mentions(a.roles, [role]))
    return (await session.exec(q)).all()


def votes_owed(snapshot: dict[str, Any]) -> set[str]:
    """Who owes a vote on the ticket now: the approvers of the current level of each of its
    active approval nodes who have not voted at that level (a vote handed on is owed by the
    delegate, who stands in the approvers)."""
    nodes = snapshot.get("nodes") or {}
    owed: set[str] = set()
    for node_id in snapshot.get("active") or []:
        node = nodes.get(node_id) or {}
        if node.get("type") != "approval" or node.get("status") in ("done", "cancelled"):
            continue
        level = node.get("level", 0)
        voted = {v.get("actor_id") for v in node.get("votes") or [] if v.get("level") == level}
        owed.update(a for a in node.get("approvers") or [] if a not in voted)
    return owed


async def owed_votes(session: AsyncSession, person_ids: list[str]) -> list[tuple[str, str, bool]]:
    """Per open ticket and person of ``person_ids`` who owes a vote on it (``votes_owed``) without
    being its assignee (that ticket is in their ``held_per_region`` already): rows (person, region,
    breached). One query, pre-filtered on the snapshot's text, then checked in Python."""
    t = Ticket
    q = select(col(t.assignee), col(t.region), col(t.sla_breached), col(t.snapshot)).where(
        col(t.status).in_(OPEN_STATUSES),
        json_text_contains(t.snapshot, '"approval"'),
        mentions(t.snapshot, person_ids),
    )
    wanted = set(person_ids)
    return [
        (person, region, bool(breached))
        for assignee, region, breached, snapshot in (await session.exec(q)).all()
        for person in sorted(votes_owed(snapshot or {}) & wanted)
        if person != assignee
    ]


async def held_per_region(session: AsyncSession, person_ids: list[str]) -> Sequence[Any]:
    """The load ``/people`` shows and dispatch weighs, split by the tickets' region, with the
    breached part: rows (assignee, count, region, breached)."""
    held = load_query(person_ids).add_columns(col(Ticket.region), _count_if(col(Ticket.sla_breached)))
    return (await session.exec(held.group_by(col(Ticket.region)))).all()


async def csat(
    session: AsyncSession, codes: list[str], since: datetime, until: datetime, by: CsatDimension
) -> Sequence[Any]:
    """Surveys answered in [since, until) in the regions ``codes``, per value of ``by`` (the
    survey's region, the engineer's team, the engineer, the ticket type): rows (value, answers,
    sum of ratings, ratings 4-5, ratings at most 2)."""
    s = Survey
    key = col(getattr(s, by))
    rating = col(s.rating)
    q = (
        select(key, sa.func.count(), sa.func.sum(rating), _count_if(rating >= 4), _count_if(rating <= 2))  # type: ignore[call-overload]
        .where(
            col(s.region).in_(codes),
            col(s.status) == "answered",
            col(s.answered_at) >= since,
            col(s.answered_at) < until,
        )
        .group_by(key)
    )
    return (await session.exec(q)).all()
