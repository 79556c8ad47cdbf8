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

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

import store.people
import store.regions
import store.reports
from api.errors import FieldInvalid, Forbidden
from domain.access import ALL_REGIONS, can_access_region, visible_regions
from domain.roles import takes_tickets
from models.common import Priority, TicketStatus
from models.reports import (
    CsatFigures,
    CsatGroup,
    CsatReport,
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
from models.ticket import ActorRef
from store.tickets import OPEN_STATUSES
from workflows.sla import LEVELS as ESCALATION_LEVELS

READERS = frozenset({"supervisor", "manager", "director", "general_manager", "admin"})
DEFAULT_PERIOD = timedelta(days=30)
NO_ESCALATION = "none"
RESOLVED, CLOSED = TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value
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
        row = await store.regions.get(session, region)
        if row is None:
            raise FieldInvalid("region", f"unknown region {region!r}", "unknown_region", location="query")
        if not can_access_region(actor, region):
            raise Forbidden(f"actor {actor.id!r} may not read reports of region {region!r}")
        return [(row.code, row.name)]
    return await store.regions.names(session, visible_regions(actor))


def report_period(since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) in UTC; by default the 30 days up to now (or up to ``until``)."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise FieldInvalid(name, "give a UTC offset (e.g. Z or +08:00)", "timezone_aware", location="query")
    end = (until or now).astimezone(UTC)
    start = since.astimezone(UTC) if since is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise FieldInvalid(
            "since",
            f"since ({start.isoformat()}) must be before until ({end.isoformat()})",
            "invalid_period",
            location="query",
        )
    return start, end


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


async def _count_open(session: AsyncSession, codes: list[str], tally: dict[str, _Tally]) -> None:
    for region, status, priority, ticket_type, escalation, breached, n in await store.reports.open_counts(
        session, codes
    ):
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
    for region, n, breached in await store.reports.created_counts(session, codes, since, until):
        tally[region].created += n
        tally[region].created_breached += int(breached or 0)
    for region, status, n in await store.reports.ended_counts(session, codes, since, until):
        if status == CLOSED:
            tally[region].closed += n
        else:
            tally[region].cancelled += n


async def _resolution_times(
    session: AsyncSession, codes: list[str], since: datetime, until: datetime, tally: dict[str, _Tally]
) -> None:
    for region, created_at, resolved_at in await store.reports.resolutions(session, codes, since, until):
        tally[region].durations.append(max((resolved_at - created_at).total_seconds(), 0.0))


async def _status_times(
    session: AsyncSession, codes: list[str], since: datetime, until: datetime, tally: dict[str, _Tally]
) -> None:
    """Sum and count of each status's seconds (the snapshot's ``time_in_status``) over the
    tickets resolved in the period or closed in it. A status a ticket is still in is not in
    ``time_in_status`` yet, so it counts only the tickets that have left it."""
    for row in await store.reports.status_times(session, codes, since, until, TIMED_STATUSES):
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
    people = [  # the SQL filters on the JSON text were coarse: check the lists themselves
        p
        for p in await store.reports.workload_people(session, codes, role, team)
        if (ALL_REGIONS in p.regions or any(c in p.regions for c in codes)) and (role is None or role in p.roles)
    ]
    ids = [p.id for p in people]
    load: Counter[str] = Counter()
    load_here: Counter[str] = Counter()
    breached: Counter[str] = Counter()

    def count(person: str, n: int, ticket_region: str, n_breached: int) -> None:
        load[person] += n
        if ticket_region in codes:  # breaches of other regions are not the caller's to see
            load_here[person] += n
            breached[person] += n_breached

    if ids:
        # The tickets they hold (the load /people shows and dispatch weighs), then the votes they
        # owe on other open tickets, split by region, with the breached part.
        for assignee, n, ticket_region, n_breached in await store.reports.held_per_region(session, ids):
            count(assignee, n, ticket_region, int(n_breached or 0))
        for person, ticket_region, is_breached in await store.reports.owed_votes(session, ids):
            count(person, 1, ticket_region, int(is_breached))
    if role is None:  # asked for a role, everyone of it; else the people tickets go to, and anyone at work here
        people = [p for p in people if takes_tickets(p.roles) or load_here[p.id]]
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


# --- customer satisfaction ---


def _csat_figures(answered: int, total: int, high: int, low: int) -> CsatFigures:
    if not answered:
        return CsatFigures(answered=0, average=None, csat=None, dissatisfied=None)
    return CsatFigures(
        answered=answered, average=round(total / answered, 2), csat=high / answered, dissatisfied=low / answered
    )


async def csat(
    session: AsyncSession,
    actor: ActorRef,
    region: str | None,
    group_by: store.reports.CsatDimension,
    since: datetime | None,
    until: datetime | None,
    now: datetime | None = None,
) -> CsatReport:
    """Survey answers in the period per region, team, engineer or ticket type (docs/surveys.md):
    count, mean rating, share of 4-5 (CSAT) and of 1-2, over the caller's report regions."""
    regions = await report_regions(session, actor, region)
    start, end = report_period(since, until, now or datetime.now(UTC))
    codes = [code for code, _ in regions]
    rows = await store.reports.csat(session, codes, start, end, group_by) if codes else []
    names: dict[str, str] = {}
    if group_by == "region":
        names = dict(regions)
    elif group_by == "engineer":
        people = await store.people.by_ids(session, [r[0] for r in rows if r[0] is not None])
        names = {p.id: p.name for p in people.values()}
    groups = [
        CsatGroup(key=key, name=names.get(key) if key else None, **dict(_csat_figures(n, int(t), int(hi), int(lo))))
        for key, n, t, hi, lo in rows
    ]
    groups.sort(key=lambda g: (g.key is None, g.key or ""))
    total = _csat_figures(*(sum(int(r[i] or 0) for r in rows) for i in range(1, 5)))
    return CsatReport(since=start, until=end, group_by=group_by, regions=codes, groups=groups, total=total)
