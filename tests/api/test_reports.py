"""/reports over HTTP against the real app (httpx) and the real database (SQLite, or PostgreSQL
with TICKETFLOW_TEST_DATABASE_URL): exact figures over tickets seeded straight into the read
model, who may read them, and regional isolation.

Each test gets two regions of its own (``re-<suffix>``, ``rs-<suffix>``) and people of its own
(deactivated at the end), so tickets other tests leave in east/south/north never reach these
figures. The seeded period is March 2024; "now" figures (open tickets) do not depend on it.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from sqlmodel import col, select
from temporalio.client import Client

from api.app import create_app
from api.services.reports import _percentile
from models.db import Database
from models.settings import Settings
from models.tables import Actor, ApiKey, Region, Ticket, TicketEventRow
from models.ticket import NodeState, NodeStatus, Vote

NO_TEMPORAL = cast(Client, object())  # reports never talk to Temporal
SINCE, UNTIL = "2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z"
B = datetime(2024, 3, 10, tzinfo=UTC)  # when most seeded tickets are created
BEFORE = datetime(2024, 2, 1, tzinfo=UTC)  # before the period
s = timedelta(seconds=1)


@dataclass
class T:
    """One seeded ticket: its row, and (for resolutions) the moves into resolved."""

    key: str
    region: str  # "E" or "S"
    status: str
    priority: str = "normal"
    ticket_type: str = "general"
    created_at: datetime = B
    breached: bool = False
    escalation: str | None = None
    assignee: str | None = None  # a worker's short name: w1…
    resolved_at: tuple[datetime, ...] = ()  # every move into resolved, in order
    closed_at: datetime | None = None
    time_in_status: dict[str, float] | None = None


TICKETS = [
    # --- region E: open now ---
    T("eo1", "E", "new", time_in_status={"new": 77777}),
    T("eo2", "E", "new", "high", "equipment_repair", breached=True, escalation="supervisor", assignee="w4"),
    T("eo3", "E", "assigned", "high", breached=True, escalation="manager", assignee="w1"),
    T("eo4", "E", "in_progress", "urgent", breached=True, escalation="director", assignee="w1"),
    T("eo5", "E", "in_progress", "low", "equipment_repair", assignee="w2"),
    T(
        "eo6",
        "E",
        "assigned",
        created_at=datetime(2024, 1, 15, tzinfo=UTC),
        breached=True,
        escalation="manager",
        assignee="w3",
    ),
    # --- region E: resolved in the period after 60, 180, 300, 420, 540 and 3600 s ---
    T(
        "er1",
        "E",
        "closed",
        resolved_at=(B + 60 * s,),
        closed_at=B + 1000 * s,
        assignee="w2",
        time_in_status={"new": 100, "assigned": 200, "in_progress": 300, "resolved": 50},
    ),
    T(
        "er2",
        "E",
        "closed",
        resolved_at=(B + 180 * s,),
        closed_at=B + 2000 * s,
        time_in_status={"new": 300, "in_progress": 500, "resolved": 150},
    ),
    T("er3", "E", "closed", resolved_at=(B + 300 * s,), closed_at=B + 3000 * s),
    # resolved, reopened, resolved again (the last move counts), then a comment (resolved → resolved)
    T(
        "er4",
        "E",
        "resolved",
        resolved_at=(B + 100 * s, B + 420 * s),
        time_in_status={"new": 20, "assigned": 40, "in_progress": 360, "resolved": 50},
    ),
    T("er5", "E", "resolved", resolved_at=(B + 540 * s,)),
    T("er6", "E", "closed", resolved_at=(B + 3600 * s,), closed_at=B + 4000 * s),
    # --- region E: around the period ---
    T(
        "ec1",
        "E",
        "closed",
        created_at=BEFORE,
        breached=True,
        resolved_at=(BEFORE + timedelta(days=1),),
        closed_at=B,
        time_in_status={"new": 80, "assigned": 60, "in_progress": 1000, "resolved": 250},
    ),
    T("ex1", "E", "cancelled", closed_at=B + 10 * s, time_in_status={"new": 99999}),
    T(
        "el1",
        "E",
        "resolved",
        created_at=datetime(2024, 2, 27, tzinfo=UTC),
        resolved_at=(datetime(2024, 4, 2, tzinfo=UTC),),
        time_in_status={"new": 55555},
    ),
    T(
        "eold",
        "E",
        "closed",
        created_at=datetime(2024, 2, 20, tzinfo=UTC),
        resolved_at=(datetime(2024, 2, 24, tzinfo=UTC),),
        closed_at=datetime(2024, 2, 25, tzinfo=UTC),
        time_in_status={"new": 44444},
    ),
    # --- region S ---
    T("so1", "S", "new", "urgent", breached=True, escalation="supervisor"),
    T("so2", "S", "in_progress", assignee="w3"),
    T(
        "sr1",
        "S",
        "closed",
        resolved_at=(B + 120 * s,),
        closed_at=B + 500 * s,
        time_in_status={"new": 500, "in_progress": 700, "resolved": 100},
    ),
    T("sr2", "S", "closed", breached=True, resolved_at=(B + 240 * s,), closed_at=B + 600 * s),
    T("sr3", "S", "resolved", resolved_at=(B + 360 * s,)),
    T("sr4", "S", "resolved", breached=True, resolved_at=(B + 480 * s,)),
]

# short name: (roles, regions as "E"/"S", team, capacity, active)
PEOPLE: dict[str, tuple[list[str], list[str], str | None, int, bool]] = {
    "mgr-e": (["manager"], ["E"], None, 10, True),
    "mgr-s": (["manager"], ["S"], None, 10, True),
    "sup-e": (["supervisor"], ["E"], None, 10, True),
    "boss": (["general_manager"], ["E", "S"], None, 10, True),
    "eng-e": (["engineer"], ["E"], None, 10, True),
    "w1": (["tech"], ["E"], "alpha", 4, True),
    "w2": (["tech"], ["E"], "alpha", 5, True),
    "w3": (["tech"], ["E", "S"], "beta", 2, True),
    "w4": (["tech"], ["E"], "beta", 0, True),
    "w5": (["tech"], ["E"], None, 3, True),
    "w6": (["tech"], ["E"], "alpha", 3, False),  # deactivated: never in a report
    "w7": (["tech"], ["S"], "alpha", 3, True),
    # people who take no tickets (docs/reports.md): in the workload only while they hold open work
    "hr-e": (["hr"], ["E"], None, 10, True),
    "legal-e": (["legal"], ["E"], None, 10, True),
    "fin-e": (["finance"], ["E"], None, 10, True),
    "gw-e": (["channel"], ["E"], None, 10, True),
    "designer-e": (["process_admin"], ["E"], None, 10, True),
}


class Reports:
    def __init__(self, http: httpx.AsyncClient, suffix: str) -> None:
        self.http, self.suffix = http, suffix
        self.E, self.S = f"re-{suffix}", f"rs-{suffix}"
        self.role = f"tech-{suffix}"  # the workers' role: unique, so role= isolates them

    def region(self, short: str) -> str:
        return {"E": self.E, "S": self.S}[short]

    def pid(self, short: str) -> str:
        return f"rpt-{self.suffix}-{short}"

    def team(self, short: str | None) -> str | None:
        return None if short is None else f"{short}-{self.suffix}"

    async def get(self, path: str, actor: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers={"X-API-Key": f"key-{self.pid(actor)}"})

    async def overview(self, actor: str, **params: Any) -> dict[str, Any]:
        r = await self.get("/reports/overview", actor, **{"since": SINCE, "until": UNTIL, **params})
        assert r.status_code == 200, r.text
        return r.json()


async def _seed(db: Database, rep: Reports) -> None:
    async with db.session() as session:
        session.add(Region(code=rep.E, name=f"Report east {rep.suffix}"))
        session.add(Region(code=rep.S, name=f"Report south {rep.suffix}"))
        for short, (roles, regions, team, capacity, active) in PEOPLE.items():
            session.add(Actor(
                id=rep.pid(short), name=f"Test {short}", roles=[rep.role if r == "tech" else r for r in roles],
                regions=[rep.region(r) for r in regions], team=rep.team(team), capacity=capacity, active=active,
            ))  # fmt: skip
            session.add(ApiKey.for_secret(rep.pid(short), f"key-{rep.pid(short)}", created_by="test"))
        await session.flush()
        for t in TICKETS:
            session.add(Ticket(
                id=f"R{rep.suffix}{t.key}", ticket_type=t.ticket_type, region=rep.region(t.region),
                priority=t.priority, status=t.status, assignee=rep.pid(t.assignee) if t.assignee else None,
                title=f"report {t.key}", channel="agent", created_by="agent-wang", created_at=t.created_at,
                updated_at=t.closed_at or t.created_at, closed_at=t.closed_at, sla_breached=t.breached,
                escalation=t.escalation,
                snapshot={"time_in_status": t.time_in_status} if t.time_in_status is not None else {},
            ))  # fmt: skip
        await session.flush()
        for t in TICKETS:
            moves: list[tuple[str, str | None, str, datetime]] = [("create", None, "new", t.created_at)]
            for n, at in enumerate(t.resolved_at):
                if n:
                    moves.append(("reopen", "resolved", "in_progress", at - 50 * s))
                moves.append(("resolve", "in_progress", "resolved", at))
            if t.key == "er4":
                moves.append(("comment", "resolved", "resolved", B + 5000 * s))  # no resolution
            if t.closed_at is not None:  # closed after its resolution, or cancelled while new
                ending, came_from = {"closed": ("close", "resolved"), "cancelled": ("cancel", "new")}[t.status]
                moves.append((ending, came_from, t.status, t.closed_at))
            for seq, (action, before, after, at) in enumerate(moves, 1):
                session.add(
                    TicketEventRow(
                        ticket_id=f"R{rep.suffix}{t.key}",
                        seq=seq,
                        action=action,
                        actor_id="agent-wang",
                        from_status=before,
                        to_status=after,
                        at=at,
                    )
                )
        await session.commit()


@pytest.fixture
async def rep(db: Database, database_url: str) -> AsyncIterator[Reports]:
    suffix = uuid.uuid4().hex[:6]
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    transport = httpx.ASGITransport(app=app)
    base = "http://ticketflow.test"
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url=base) as h:
        reports = Reports(h, suffix)
        await _seed(db, reports)
        yield reports
    async with db.session() as session:  # leave no active test people behind for later tests' look-ups
        for actor in (await session.exec(select(Actor).where(col(Actor.id).like(f"rpt-{suffix}-%")))).all():
            actor.active = False
            session.add(actor)
        await session.commit()


E_OPEN = {
    "total": 6,
    "by_status": {"new": 2, "assigned": 2, "in_progress": 2},
    "by_priority": {"low": 1, "normal": 2, "high": 2, "urgent": 1},
    "by_type": {"equipment_repair": 2, "general": 4},
    "awaiting_close": 3,  # er4, er5, el1
}
E_PERIOD = {"created": 12, "resolved": 6, "closed": 5, "cancelled": 1}
E_SLA = {
    "open_breached": 4,
    "created_breached": 3,
    "breach_rate": 0.25,
    "open_by_escalation": {"none": 2, "supervisor": 1, "manager": 2, "director": 1},
}
# durations 60, 180, 300, 420, 540, 3600: p50 between 300 and 420, p90 half way from 540 to 3600
E_RESOLUTION = {"count": 6, "mean_seconds": 850.0, "p50_seconds": 360.0, "p90_seconds": 2070.0}
E_TIME_IN_STATUS = {  # er1, er2, er4 and ec1 (closed in the period, resolved before it)
    "new": {"tickets": 4, "mean_seconds": 125.0},
    "assigned": {"tickets": 3, "mean_seconds": 100.0},
    "in_progress": {"tickets": 4, "mean_seconds": 540.0},
    "resolved": {"tickets": 4, "mean_seconds": 125.0},
}
E_FIGURES = {
    "open": E_OPEN,
    "period": E_PERIOD,
    "sla": E_SLA,
    "resolution_time": E_RESOLUTION,
    "time_in_status": E_TIME_IN_STATUS,
}


async def test_overview_of_one_region_has_exact_figures(rep: Reports):
    body = await rep.overview("mgr-e", region=rep.E)
    assert (body["since"], body["until"]) == ("2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z")
    [east] = body["regions"]
    assert east == {"region": rep.E, "name": f"Report east {rep.suffix}", **E_FIGURES}
    assert body["total"] == E_FIGURES


async def test_overview_of_every_region_adds_regions_up_and_recomputes_percentiles(rep: Reports):
    body = await rep.overview("boss")
    assert [r["region"] for r in body["regions"]] == [rep.E, rep.S]
    east, south = body["regions"]
    assert {k: east[k] for k in E_FIGURES} == E_FIGURES
    assert south["open"] == {
        "total": 2,
        "by_status": {"new": 1, "assigned": 0, "in_progress": 1},
        "by_priority": {"low": 0, "normal": 1, "high": 0, "urgent": 1},
        "by_type": {"general": 2},
        "awaiting_close": 2,
    }
    assert south["period"] == {"created": 6, "resolved": 4, "closed": 2, "cancelled": 0}
    assert south["sla"] == {
        "open_breached": 1,
        "created_breached": 3,
        "breach_rate": 0.5,
        "open_by_escalation": {"none": 1, "supervisor": 1, "manager": 0, "director": 0},
    }
    assert south["resolution_time"] == {"count": 4, "mean_seconds": 300.0, "p50_seconds": 300.0, "p90_seconds": 444.0}
    assert south["time_in_status"]["assigned"] == {"tickets": 0, "mean_seconds": None}
    assert south["time_in_status"]["in_progress"] == {"tickets": 1, "mean_seconds": 700.0}

    total = body["total"]
    assert total["open"] == {
        "total": 8,
        "by_status": {"new": 3, "assigned": 2, "in_progress": 3},
        "by_priority": {"low": 1, "normal": 3, "high": 2, "urgent": 2},
        "by_type": {"equipment_repair": 2, "general": 6},
        "awaiting_close": 5,
    }
    assert total["period"] == {"created": 18, "resolved": 10, "closed": 7, "cancelled": 1}
    assert total["sla"] == {
        "open_breached": 5,
        "created_breached": 6,
        "breach_rate": 6 / 18,
        "open_by_escalation": {"none": 3, "supervisor": 2, "manager": 2, "director": 1},
    }
    # 60, 120, …, 540 and 3600: mean 630, p50 between 300 and 360, p90 a tenth of the way from 540 to 3600
    assert total["resolution_time"] == {"count": 10, "mean_seconds": 630.0, "p50_seconds": 330.0, "p90_seconds": 846.0}
    assert total["time_in_status"] == {
        "new": {"tickets": 5, "mean_seconds": 200.0},
        "assigned": {"tickets": 3, "mean_seconds": 100.0},
        "in_progress": {"tickets": 5, "mean_seconds": 572.0},
        "resolved": {"tickets": 5, "mean_seconds": 120.0},
    }


async def test_a_manager_of_one_region_never_sees_another_regions_tickets(rep: Reports):
    east = await rep.overview("mgr-e")  # no region: every region the caller covers
    assert [r["region"] for r in east["regions"]] == [rep.E]
    assert east["total"] == E_FIGURES  # none of S's 2 open, 6 created, 4 resolved tickets
    r = await rep.get("/reports/overview", "mgr-e", region=rep.S)
    assert r.status_code == 403 and r.json()["code"] == "forbidden" and rep.S in r.json()["detail"]
    south = await rep.overview("mgr-s")
    assert [r["region"] for r in south["regions"]] == [rep.S]
    assert south["total"]["open"]["total"] == 2 and south["total"]["period"]["created"] == 6
    assert (await rep.get("/reports/workload", "mgr-s", region=rep.E)).status_code == 403


async def test_only_report_readers_may_read(rep: Reports):
    for path in ("/reports/overview", "/reports/workload"):
        r = await rep.get(path, "eng-e")
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "forbidden" and "may not read reports" in r.json()["detail"]
        assert "manager" in r.json()["detail"] and "supervisor" in r.json()["detail"]
        r = await rep.http.get(path)
        assert r.status_code == 401
    assert (await rep.get("/reports/overview", "sup-e", since=SINCE, until=UNTIL)).json()["total"] == E_FIGURES


async def test_bad_periods_and_regions_are_422_with_field_paths(rep: Reports):
    for since, until in ((UNTIL, SINCE), (SINCE, SINCE)):
        r = await rep.get("/reports/overview", "mgr-e", since=since, until=until)
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == [
            {
                "loc": ["query", "since"],
                "type": "invalid_period",
                "msg": f"since ({since.replace('Z', '+00:00')}) must be before until ({until.replace('Z', '+00:00')})",
            }
        ]
    r = await rep.get("/reports/overview", "mgr-e", since="2099-01-01T00:00:00Z")  # until defaults to now
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
    r = await rep.get("/reports/overview", "mgr-e", since="2024-03-01T00:00:00")  # no UTC offset
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
    assert r.json()["detail"][0]["type"] == "timezone_aware"
    r = await rep.get("/reports/overview", "mgr-e", until="yesterday")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "until"]
    for path in ("/reports/overview", "/reports/workload"):
        r = await rep.get(path, "boss", region=f"nowhere-{rep.suffix}")
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == [
            {"loc": ["query", "region"], "msg": f"unknown region 'nowhere-{rep.suffix}'", "type": "unknown_region"}
        ]


async def test_the_default_period_is_the_last_30_days(rep: Reports):
    before = datetime.now(UTC)
    r = await rep.get("/reports/overview", "mgr-e")
    assert r.status_code == 200, r.text
    body = r.json()
    since, until = datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])
    assert until - since == timedelta(days=30) and before <= until <= datetime.now(UTC)
    total = body["total"]
    assert total["open"] == E_OPEN  # open tickets are "now", whatever the period
    assert total["period"] == {"created": 0, "resolved": 0, "closed": 0, "cancelled": 0}
    assert total["sla"]["breach_rate"] is None and total["sla"]["open_breached"] == 4
    assert total["resolution_time"] == {"count": 0, "mean_seconds": None, "p50_seconds": None, "p90_seconds": None}
    r = await rep.get("/reports/overview", "mgr-e", until=UNTIL)  # since: 30 days before until
    assert r.json()["since"] == "2024-03-02T00:00:00Z" and r.json()["total"]["period"]["created"] == 12


async def test_workload_sorts_people_by_utilisation_and_totals_teams(rep: Reports):
    r = await rep.get("/reports/workload", "mgr-e", region=rep.E, role=rep.role)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["regions"] == [rep.E]
    people = [
        (p["id"], p["load"], p["load_in_regions"], p["capacity"], p["utilisation"], p["breached"])
        for p in body["people"]
    ]
    assert people == [
        (rep.pid("w4"), 1, 1, 0, None, 1),  # loaded without any capacity: the most overloaded
        (rep.pid("w3"), 2, 1, 2, 1.0, 1),  # one ticket in S counts towards the load, not the region's
        (rep.pid("w1"), 2, 2, 4, 0.5, 2),
        (rep.pid("w2"), 1, 1, 5, 0.2, 0),  # a closed ticket is no load
        (rep.pid("w5"), 0, 0, 3, 0.0, 0),
    ]  # w6 is deactivated, w7 works in S only
    assert body["people"][0]["team"] == rep.team("beta") and body["people"][0]["regions"] == [rep.E]
    assert body["teams"] == [
        {"team": rep.team("beta"), "members": 2, "load": 3, "capacity": 2, "utilisation": 1.5, "breached": 2},
        {"team": rep.team("alpha"), "members": 2, "load": 3, "capacity": 9, "utilisation": 3 / 9, "breached": 2},
        {"team": None, "members": 1, "load": 0, "capacity": 3, "utilisation": 0.0, "breached": 0},
    ]
    r = await rep.get("/reports/workload", "mgr-e", role=rep.role, team=rep.team("alpha"))
    assert [p["id"] for p in r.json()["people"]] == [rep.pid("w1"), rep.pid("w2")]

    south = (await rep.get("/reports/workload", "boss", region=rep.S, role=rep.role)).json()
    assert [(p["id"], p["load"], p["load_in_regions"]) for p in south["people"]] == [
        (rep.pid("w3"), 2, 1),
        (rep.pid("w7"), 0, 0),
    ]
    both = (await rep.get("/reports/workload", "boss", role=rep.role)).json()
    assert both["regions"] == [rep.E, rep.S] and len(both["people"]) == 6
    assert next(p for p in both["people"] if p["id"] == rep.pid("w3"))["load_in_regions"] == 2


# Roles whose people take no tickets (docs/reports.md, "Who is listed").
DESK_ROLES = {"admin", "process_admin", "hr", "legal", "finance", "general_manager", "manager", "director", "channel"}


async def _add_open(db: Database, rep: Reports, key: str, assignee: str | None, snapshot: dict[str, Any], **kw: Any):
    async with db.session() as session:
        session.add(Ticket(
            id=f"R{rep.suffix}{key}", ticket_type="discount_approval", region=kw.get("region", rep.E),
            priority="normal", status=kw.get("status", "in_progress"), assignee=rep.pid(assignee) if assignee else None,
            title=f"report {key}", channel="agent", created_by="agent-wang", created_at=B, updated_at=B,
            sla_breached=kw.get("breached", False), snapshot=snapshot,
        ))  # fmt: skip
        await session.commit()


async def test_workload_lists_only_people_who_take_tickets(rep: Reports, db: Database):
    body = (await rep.get("/reports/workload", "mgr-e", region=rep.E)).json()
    mine = {p["id"] for p in body["people"] if p["id"].startswith(rep.pid(""))}
    # the front line and supervisors, and a custom role a template gives tasks to ("tech")
    assert mine == {rep.pid(x) for x in ("sup-e", "eng-e", "w1", "w2", "w3", "w4", "w5")}
    # nobody of the demo's every-region desk people either (gateways, HR, legal, designer, admin…)
    idle_desk = [p["id"] for p in body["people"] if set(p["roles"]) <= DESK_ROLES and p["load_in_regions"] == 0]
    assert idle_desk == []
    assert {"gateway-qr", "gateway-erp", "hr-tang", "legal-wu", "tmpl-admin", "admin"}.isdisjoint(
        p["id"] for p in body["people"]
    )
    assert sum(t["members"] for t in body["teams"]) == len(body["people"])

    # ... unless they hold open work in the report's regions
    await _add_open(db, rep, "desk1", "boss", {})
    await _add_open(db, rep, "desk2", "hr-e", {}, status="resolved")  # resolved: no load
    body = (await rep.get("/reports/workload", "mgr-e", region=rep.E)).json()
    boss = next(p for p in body["people"] if p["id"] == rep.pid("boss"))
    assert (boss["load"], boss["load_in_regions"], boss["capacity"]) == (1, 1, 10)
    assert rep.pid("hr-e") not in {p["id"] for p in body["people"]}

    # asked for by role, everyone of that role is listed, idle or not
    r = await rep.get("/reports/workload", "mgr-e", region=rep.E, role="legal")
    assert rep.pid("legal-e") in {p["id"] for p in r.json()["people"]}


def _approval(level: int, approvers: list[str], votes: list[tuple[str, int]], status: str = "open") -> dict[str, Any]:
    """An approval node as the projection writes it into the snapshot (``NodeState`` as JSON)."""
    return NodeState(
        id="approve",
        type="approval",
        status=NodeStatus(status),
        started_at=B,
        level=level,
        approvers=approvers,
        votes=[Vote(actor_id=a, decision="approve", level=lvl, at=B) for a, lvl in votes],
    ).model_dump(mode="json")


async def test_an_owed_approval_vote_is_load(rep: Reports, db: Database):
    p = rep.pid

    def snapshot(node: dict[str, Any], active: bool = True) -> dict[str, Any]:
        return {"active": ["approve"] if active else [], "nodes": {"approve": node}}

    # level 1: w1, fin-e and w2 owe their votes (w2's vote was at level 0), w5 has voted
    await _add_open(
        db,
        rep,
        "ap1",
        None,
        snapshot(_approval(1, [p("w1"), p("fin-e"), p("w5"), p("w2")], [(p("w2"), 0), (p("w5"), 1)])),
    )
    # w1 also holds this ticket's task: one ticket, counted once; breached, so w1's breached count grows
    await _add_open(db, rep, "ap2", "w1", snapshot(_approval(0, [p("w1")], [])), breached=True)
    # w2 owes a vote on a ticket in S: load, not load in E
    await _add_open(db, rep, "ap3", None, snapshot(_approval(0, [p("w2")], [])), region=rep.S)
    # no vote owed: an approval no longer active, a ticket resolved, a ticket closed
    await _add_open(db, rep, "ap4", None, snapshot(_approval(0, [p("w5")], []), active=False))
    await _add_open(db, rep, "ap5", None, snapshot(_approval(0, [p("w5")], [])), status="resolved")
    await _add_open(db, rep, "ap6", None, snapshot(_approval(0, [p("w5")], [])), status="closed")

    body = (await rep.get("/reports/workload", "mgr-e", region=rep.E)).json()
    got = {x["id"]: (x["load"], x["load_in_regions"], x["breached"]) for x in body["people"]}
    # before: w1 (2, 2, 2), w2 (1, 1, 0), w5 (0, 0, 0), fin-e not listed
    assert got[p("w1")] == (4, 4, 3)  # eo3, eo4, ap1 (vote), ap2 (task and vote)
    assert got[p("w2")] == (3, 2, 0)  # eo5, ap1 (vote), ap3 (vote, in S)
    assert got[p("w5")] == (0, 0, 0)
    assert got[p("fin-e")] == (1, 1, 0)  # takes no tickets, but owes a vote here: listed
    w1 = next(x for x in body["people"] if x["id"] == p("w1"))
    assert w1["utilisation"] == 1.0


def test_percentiles_interpolate_between_the_nearest_ranks():
    assert _percentile([5.0], 0.9) == 5.0
    assert _percentile([10.0, 20.0], 0.5) == 15.0
    assert _percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9) == pytest.approx(4.6)
