"""GET /me/work over HTTP against the real app: tasks held, offered and claimable and approvals
waiting for a vote, from read-model rows written as the projection writes them, soonest deadline
first. Each test has its own region (24x7 calendar) and people, so other tests' tickets never show."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from temporalio.client import Client

import store.tickets
from api.app import create_app
from models.calendar import BusinessCalendar
from models.db import Database
from models.settings import Settings
from models.tables import Actor, ApiKey, Region
from models.ticket import NodeState, NodeStatus, Priority, SlaClock, SlaState, TicketState, TicketStatus, Vote

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class World:
    http: httpx.AsyncClient
    db: Database
    region: str
    suffix: str

    def pid(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def key(self, name: str) -> dict[str, str]:
        return {"X-API-Key": f"key-{self.pid(name)}"}

    async def person(self, name: str, roles: list[str], regions: list[str] | None = None, groups=()) -> str:
        pid = self.pid(name)
        async with self.db.session() as s:
            s.add(Actor(id=pid, name=name, roles=roles, regions=regions or [self.region], groups=list(groups)))
            await s.flush()
            s.add(ApiKey.for_secret(pid, f"key-{pid}", created_by="test"))
            await s.commit()
        return pid

    async def ticket(self, *nodes: NodeState, region: str | None = None, **extra: Any) -> str:
        tid = f"W{uuid.uuid4().hex[:12].upper()}"
        values: dict[str, Any] = {
            "ticket_id": tid,
            "ticket_type": "general",
            "region": region or self.region,
            "priority": Priority.NORMAL,
            "title": f"work {tid}",
            "created_by": "agent-wang",
            "created_at": NOW - timedelta(hours=1),
            "updated_at": NOW,
            "status": TicketStatus.NEW,
            "nodes": {n.id: n for n in nodes},
            "active": [n.id for n in nodes],
            **extra,
        }
        state = TicketState(**values)
        async with self.db.session() as s:
            await store.tickets.insert_intake(s, state, None, "x")
            await s.commit()
        return tid

    async def work(self, name: str, **params: Any) -> list[dict[str, Any]]:
        r = await self.http.get("/me/work", headers=self.key(name), params=params)
        assert r.status_code == 200, r.text
        return r.json()["items"]


def task(node_id: str = "work", status: NodeStatus = NodeStatus.OPEN, **kw: Any) -> NodeState:
    return NodeState(id=node_id, type="task", name=f"Task {node_id}", status=status, started_at=NOW, **kw)


def approval(approvers: list[str], **kw: Any) -> NodeState:
    return NodeState(
        id="approve", type="approval", name="Approve", status=NodeStatus.OPEN, started_at=NOW,
        levels=["manager"], approvers=approvers, **kw,
    )  # fmt: skip


def resolution(hours_left: float, **kw: Any) -> SlaState:
    """A running resolution clock started now with ``hours_left`` of its target (24x7 calendar)."""
    clock = SlaClock(target=timedelta(hours=hours_left), running_since=NOW, **kw)
    return SlaState(clocks={"resolution": clock})


@pytest.fixture
async def world(db: Database, database_url: str) -> AsyncIterator[World]:
    suffix = uuid.uuid4().hex[:8]
    region = f"w{suffix}"
    async with db.session() as s:
        cal = BusinessCalendar.always_open("UTC").model_dump(mode="json")
        s.add(Region(code=region, name=f"Work test {suffix}", timezone="UTC", calendar=cal))
        await s.commit()
    app = create_app(Settings(database_url=database_url), client=cast(Client, object()))  # Temporal is never asked
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ticketflow.test") as http:
            yield World(http=http, db=db, region=region, suffix=suffix)


async def test_held_offered_claimable_and_votes_soonest_deadline_first(world: World):
    li = await world.person("li", ["engineer"])
    mgr = await world.person("mgr", ["manager"])
    held = await world.ticket(task(status=NodeStatus.ASSIGNED, assignee=li), sla=resolution(5))
    offered = await world.ticket(task(offers=[li, "someone-else"]), sla=resolution(1))
    by_role = await world.ticket(task(candidates="role:engineer"), sla=resolution(30), priority=Priority.URGENT)
    by_user = await world.ticket(task(candidates=f"user:{li}"))  # no SLA: last
    overdue = await world.ticket(
        task(status=NodeStatus.IN_PROGRESS, assignee=li), status=TicketStatus.IN_PROGRESS, sla=resolution(0)
    )
    vote = await world.ticket(approval([mgr, li]), sla=resolution(2))

    items = await world.work("li")
    assert [(i["ticket_id"], i["kind"]) for i in items] == [
        (overdue, "assigned"),
        (offered, "offered"),
        (vote, "approval"),
        (held, "assigned"),
        (by_role, "claimable"),
        (by_user, "claimable"),
    ]
    first = items[0]
    assert first["due"] == "resolution" and first["seconds_left"] <= 0
    assert 3500 <= items[1]["seconds_left"] <= 3600 and set(items[1]["allowed_actions"]) == {"claim", "comment"}
    assert {"start", "delegate"} <= set(items[3]["allowed_actions"]) and items[3]["node_name"] == "Task work"
    assert items[2]["level"] == "manager" and "approve" in items[2]["allowed_actions"]
    assert items[5]["due_at"] is None and items[5]["seconds_left"] is None

    mine = await world.work("mgr")
    assert [(i["ticket_id"], i["kind"], i["node_type"]) for i in mine] == [(vote, "approval", "approval")]


async def test_what_is_not_yours_is_left_out(world: World):
    li = await world.person("li", ["engineer"])
    await world.person("zhao", ["engineer"])
    other_region = f"{world.region}x"
    voted = approval([li], votes=[Vote(actor_id=li, decision="approve", level=0, at=NOW)])
    hidden = [
        await world.ticket(task(status=NodeStatus.ASSIGNED, assignee=world.pid("zhao"))),  # someone else's
        await world.ticket(task(offers=[world.pid("zhao")], candidates="role:engineer")),  # offered to another
        await world.ticket(task(candidates="role:supervisor")),  # another role
        await world.ticket(task(candidates="role:engineer"), region=other_region),  # another region
        await world.ticket(task(status=NodeStatus.DONE, assignee=li)),  # done
        await world.ticket(voted),  # already voted on this level
        await world.ticket(task(status=NodeStatus.ASSIGNED, assignee=li), status=TicketStatus.CANCELLED),
    ]
    shown = await world.ticket(task(candidates="role:engineer"))
    items = await world.work("li")
    assert [i["ticket_id"] for i in items] == [shown]
    assert {i["ticket_id"] for i in await world.work("zhao")} == {hidden[0], hidden[1], shown}


async def test_paused_clock_site_and_delegation_limit_and_refusals(world: World):
    li = await world.person("li", ["engineer"])
    paused = SlaState(clocks={"resolution": SlaClock(target=timedelta(hours=4), paused_since=NOW)})
    site = {"lat": 31.23, "lon": 121.47, "address": "1 Century Ave"}
    tid = await world.ticket(
        task(status=NodeStatus.ASSIGNED, assignee=li, delegations={li: "eng-zhao"}, awaiting_info="Which valve?"),
        sla=paused,
        fields={"site": site},
    )
    for _ in range(3):
        await world.ticket(task(candidates="role:engineer"))
    [item] = [i for i in await world.work("li") if i["ticket_id"] == tid]
    assert (item["sla_paused"], item["due_at"], item["awaiting_info"]) == (True, None, "Which valve?")
    assert (item["address"], item["lat"], item["lon"], item["delegated_by"]) == (
        "1 Century Ave",
        31.23,
        121.47,
        "eng-zhao",
    )

    r = await world.http.get("/me/work", headers=world.key("li"), params={"limit": 2})
    assert len(r.json()["items"]) == 2 and r.json()["truncated"] is True
    for bad in ({"limit": 0}, {"limit": 201}, {"limit": "x"}):
        r = await world.http.get("/me/work", headers=world.key("li"), params=bad)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"], r.text
    r = await world.http.get("/me", headers=world.key("li"))
    assert r.json() == {"id": li, "name": "li", "roles": ["engineer"], "regions": [world.region], "groups": []}
    assert (await world.http.get("/me/work")).status_code == 401
    assert (await world.http.get("/me/work", headers={"X-API-Key": "nope"})).status_code == 401
    await world.person("gw", ["channel"], regions=["*"])
    assert (await world.http.get("/me/work", headers=world.key("gw"))).status_code == 403
