"""Manager reports over the read model: an overview of a period and the current workload.

Who: ``READERS`` (supervisor, manager, director, general manager, admin); anyone else is
``Forbidden``. Scope: a report covers the regions the caller can access, or the one region
asked for; an unknown region is ``FieldInvalid`` (422), a region outside the caller's scope
``Forbidden`` (403), as ``POST /tickets`` answers for the same mistakes.

Every count, sum and mean is a ``GROUP BY`` in the database. Only the resolution-time
percentiles need rows: one per ticket resolved in the period (region, created_at and the
resolution's time, nothing more), computed in Python so both backends agree. Totals add up
the regions' counts (and sums, for means), so a caller's total only ever holds the regions
of the report.
"""

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import FieldInvalid, Forbidden
from domain.access import ALL_REGIONS, can_access_region, visible_regions
from models.common import Priority, TicketStatus
from models.db import json_text_contains
from models.reports import (
    Figures,
    OpenTickets,
    Overview,
    PersonWorkload,
    RegionFigures,
    ResolutionTime,
    SlaSummary,
    StatusTime,
    TeamWorkload,
    Throughput,
    Workload,
)
from models.tables import OPEN_STATUSES, Actor, Region, Ticket, TicketEventRow, load_query
from models.ticket import ActorRef
from workflows.sla import LEVELS as ESCALATION_LEVELS

READERS = frozenset({"supervisor", "manager", "director", "general_manager", "admin"})
DEFAULT_PERIOD = timedelta(days=30)
NO_ESCALATION = "none"
RESOLVED, CLOSED, CANCELLED = TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value, TicketStatus.CANCELLED.value
# Statuses a ticket can leave, so the snapshot's time_in_status may hold them.
TIMED_STATUSES = (*OPEN_STATUSES, RESOLVED)


# --- who and where ---


def _require_reader(actor: ActorRef) -> None:
    if not READERS.intersection(actor.roles):
        raise Forbidden(
            f"actor {actor.id!r} may not read reports: they need one of the roles {', '.join(sorted(READERS))}"
        )


async def report_regions(session: AsyncSession, actor: ActorRef, region: str | None) -> list[tuple[str, str]]:
    """(code, name) of the regions a report covers, by code: the one asked for, or every
    region the caller can access."""
    _require_reader(actor)
    if region is not None:
        row = await session.get(Region, region)
        if row is None:
            raise FieldInvalid("region", f"unknown region {region!r}", "unknown_region", location="query")
        if not can_access_region(actor, region):
            raise Forbidden(f"actor {actor.id!r} may not read reports of region {region!r}")
        return [(row.code, row.name)]
    q = select(Region.code, Region.name).order_by(col(Region.code))
    visible = visible_regions(actor)
    if visible is not None:
        q = q.where(col(Region.code).in_(visible))
    return [(code, name) for code, name in (await session.exec(q)).all()]


def report_period(since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) in UTC; by default the 30 days up to now (or up to ``until``)."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise FieldInvalid(name, "give a UTC offset (e.g. Z or +08:00)", "timezone_aware", location="query")
    end = (until or now).astimezone(UTC)
    start = since.astimezone(UTC) if since is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise FieldInvalid(
            "since", f"since ({start.isoformat()}) must be before until ({end.isoformat()})", "invalid_period",
            location="query",
        )
    return start, end


def _count_if(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


# --- overview ---


@dataclass
class _Tally:
    """One region's figures (or the total's) while the queries come in."""

    by_status: Counter[str] = field(default_factory=Counter)
    by_priority: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_escalation: Counter[str] = field(default_factory=Counter)
    awaiting_close: int = 0
    open_breached: int = 0
    created: int = 0
    created_breached: int = 0
    closed: int = 0
    cancelled: int = 0
    durations: list[float] = field(default_factory=list)
    status_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    status_tickets: Counter[str] = field(default_factory=Counter)

    def add(self, other: "_Tally") -> None:
        for name in ("by_status", "by_priority", "by_type", "by_escalation", "status_tickets"):
            getattr(self, name).update(getattr(other, name))
        for status, seconds in other.status_seconds.items():
            self.status_seconds[status] += seconds
        for name in ("awaiting_close", "open_breached", "created", "created_breached", "closed", "cancelled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.durations.extend(other.durations)


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


async def _count_open(session: AsyncSession, codes: list[str], tally: dict[str, _Tally]) -> None:
    t = Ticket
    dims = (col(t.region), col(t.status), col(t.priority), col(t.ticket_type), col(t.escalation), col(t.sla_breached))
    q = (
        select(*dims, sa.func.count())  # type: ignore[call-overload]  # typed for up to 4 columns
        .where(col(t.region).in_(codes), col(t.status).in_([*OPEN_STATUSES, RESOLVED]))
        .group_by(*dims)
    )
    for region, status, priority, ticket_type, escalation, breached, n in (await session.exec(q)).all():
        r = tally[region]
        if status == RESOLVED:
            r.awaiting_close += n
            continue
        r.by_status[status] += n
        r.by_priority[priority] += n
        r.by_type[ticket_type] += n
        r.by_escalation[escalation or NO_ESCALATION] += n
        r.open_breached += n if breached else 0


async def _count_period(
    session: AsyncSession, codes: list[str], since: datetime, until: datetime, tally: dict[str, _Tally]
) -> None:
    t = Ticket
    created = (
        select(col(t.region), sa.func.count(), _count_if(col(t.sla_breached)))
        .where(col(t.region).in_(codes), col(t.created_at) >= since, col(t.created_at) < until)
        .group_by(col(t.region))
    )
    for region, n, breached in (await session.exec(created)).all():
        tally[region].created += n
        tally[region].created_breached += int(breached or 0)
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
    for region, status, n in (await session.exec(ended)).all():
        if status == CLOSED:
            tally[region].closed += n
        else:
            tally[region].cancelled += n


async def _resolution_times(
    session: AsyncSession, codes: list[str], since: datetime, until: datetime, tally: dict[str, _Tally]
) -> None:
    res = _resolutions(since, until)
    q = (
        select(col(Ticket.region), col(Ticket.created_at), res.c.resolved_at)
        .join(res, res.c.ticket_id == col(Ticket.id))
        .where(col(Ticket.region).in_(codes))
    )
    for region, created_at, resolved_at in (await session.exec(q)).all():
        tally[region].durations.append(max((resolved_at - created_at).total_seconds(), 0.0))


async def _status_times(
    session: AsyncSession, codes: list[str], since: datetime, until: datetime, tally: dict[str, _Tally]
) -> None:
    """Sum and count of each status's seconds (the snapshot's ``time_in_status``) over the
    tickets resolved in the period or closed in it. A status a ticket is still in is not in
    ``time_in_status`` yet, so it counts only the tickets that have left it."""
    res = _resolutions(since, until)
    t = Ticket
    seconds = {s: col(t.snapshot)[("time_in_status", s)].as_float() for s in TIMED_STATUSES}
    columns = [agg for s in TIMED_STATUSES for agg in (sa.func.sum(seconds[s]), sa.func.count(seconds[s]))]
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
    for row in (await session.exec(q)).all():
        region, aggs = row[0], row[1:]
        for i, status in enumerate(TIMED_STATUSES):
            total, n = aggs[2 * i], aggs[2 * i + 1]
            tally[region].status_seconds[status] += float(total or 0.0)
            tally[region].status_tickets[status] += int(n or 0)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between the nearest ranks (numpy's default, Excel's PERCENTILE.INC)."""
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _resolution_time(durations: list[float]) -> ResolutionTime:
    if not durations:
        return ResolutionTime(count=0, mean_seconds=None, p50_seconds=None, p90_seconds=None)
    ordered = sorted(durations)
    return ResolutionTime(
        count=len(ordered),
        mean_seconds=_seconds(math.fsum(ordered) / len(ordered)),
        p50_seconds=_seconds(_percentile(ordered, 0.5)),
        p90_seconds=_seconds(_percentile(ordered, 0.9)),
    )


def _zero_filled(counts: Counter[str], keys: Iterable[str]) -> dict[str, int]:
    """Every key of ``keys`` (0 included), then any other key seen, sorted."""
    known = list(keys)
    return {**{k: counts.get(k, 0) for k in known}, **{k: counts[k] for k in sorted(counts) if k not in known}}


def _figures(t: _Tally) -> Figures:
    return Figures(
        open=OpenTickets(
            total=sum(t.by_status.values()),
            by_status=_zero_filled(t.by_status, OPEN_STATUSES),
            by_priority=_zero_filled(t.by_priority, [p.value for p in Priority]),
            by_type=_zero_filled(t.by_type, []),
            awaiting_close=t.awaiting_close,
        ),
        period=Throughput(created=t.created, resolved=len(t.durations), closed=t.closed, cancelled=t.cancelled),
        sla=SlaSummary(
            open_breached=t.open_breached,
            created_breached=t.created_breached,
            breach_rate=t.created_breached / t.created if t.created else None,
            open_by_escalation=_zero_filled(t.by_escalation, [NO_ESCALATION, *ESCALATION_LEVELS]),
        ),
        resolution_time=_resolution_time(t.durations),
        time_in_status={
            s: StatusTime(
                tickets=t.status_tickets[s],
                mean_seconds=_seconds(t.status_seconds[s] / t.status_tickets[s]) if t.status_tickets[s] else None,
            )
            for s in TIMED_STATUSES
        },
    )


async def overview(
    session: AsyncSession,
    actor: ActorRef,
    region: str | None,
    since: datetime | None,
    until: datetime | None,
    now: datetime | None = None,
) -> Overview:
    regions = await report_regions(session, actor, region)
    start, end = report_period(since, until, now or datetime.now(UTC))
    codes = [code for code, _ in regions]
    tally = {code: _Tally() for code in codes}
    if codes:
        await _count_open(session, codes, tally)
        await _count_period(session, codes, start, end, tally)
        await _resolution_times(session, codes, start, end, tally)
        await _status_times(session, codes, start, end, tally)
    total = _Tally()
    for t in tally.values():
        total.add(t)
    return Overview(
        since=start,
        until=end,
        regions=[RegionFigures(region=code, name=name, **dict(_figures(tally[code]))) for code, name in regions],
        total=_figures(total),
    )


# --- workload ---


def _utilisation(load: int, capacity: int) -> float | None:
    return load / capacity if capacity > 0 else None


def _busiest_first(utilisation: float | None, load: int) -> float:
    """Sort key: utilisation, where no capacity at all counts as full beyond measure when loaded."""
    if utilisation is not None:
        return -utilisation
    return -math.inf if load else 0.0


async def workload(
    session: AsyncSession, actor: ActorRef, region: str | None, role: str | None = None, team: str | None = None
) -> Workload:
    regions = await report_regions(session, actor, region)
    codes = [code for code, _ in regions]
    if not codes:
        return Workload(regions=[], people=[], teams=[])
    a = Actor
    columns = (col(a.id), col(a.name), col(a.team), col(a.roles), col(a.regions), col(a.capacity))
    q = select(*columns).where(  # type: ignore[call-overload]  # typed for up to 4 columns
        col(a.active).is_(True),
        sa.or_(*(json_text_contains(a.regions, json.dumps(r)) for r in [*codes, ALL_REGIONS])),
    )
    if team is not None:
        q = q.where(col(a.team) == team)
    if role is not None:
        q = q.where(json_text_contains(a.roles, json.dumps(role)))
    people = [  # the SQL filters on the JSON text were coarse: check the lists themselves
        p
        for p in (await session.exec(q)).all()
        if (ALL_REGIONS in p.regions or any(c in p.regions for c in codes)) and (role is None or role in p.roles)
    ]
    ids = [p.id for p in people]
    load: Counter[str] = Counter()
    load_here: Counter[str] = Counter()
    breached: Counter[str] = Counter()
    if ids:
        # The load /people shows and dispatch weighs, split by region, with the breached part.
        held = load_query(ids).add_columns(col(Ticket.region), _count_if(col(Ticket.sla_breached)))
        held = held.group_by(col(Ticket.region))
        for assignee, n, ticket_region, n_breached in (await session.exec(held)).all():
            load[assignee] += n
            if ticket_region in codes:  # breaches of other regions are not the caller's to see
                load_here[assignee] += n
                breached[assignee] += int(n_breached or 0)
    out = [
        PersonWorkload(
            id=p.id,
            name=p.name,
            team=p.team,
            roles=list(p.roles),
            regions=list(p.regions),
            capacity=p.capacity,
            load=load[p.id],
            load_in_regions=load_here[p.id],
            utilisation=_utilisation(load[p.id], p.capacity),
            breached=breached[p.id],
        )
        for p in people
    ]
    out.sort(key=lambda p: (_busiest_first(p.utilisation, p.load), -p.load, p.id))
    return Workload(regions=codes, people=out, teams=_teams(out))


def _teams(people: list[PersonWorkload]) -> list[TeamWorkload]:
    members: dict[str | None, list[PersonWorkload]] = defaultdict(list)
    for p in people:
        members[p.team].append(p)
    teams = []
    for name, group in members.items():
        load, capacity = sum(p.load for p in group), sum(p.capacity for p in group)
        teams.append(
            TeamWorkload(
                team=name,
                members=len(group),
                load=load,
                capacity=capacity,
                utilisation=_utilisation(load, capacity),
                breached=sum(p.breached for p in group),
            )
        )
    teams.sort(key=lambda t: (_busiest_first(t.utilisation, t.load), -t.load, t.team is None, t.team or ""))
    return teams
