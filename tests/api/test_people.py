"""/people and /teams over HTTP against the real app (httpx) and the real database: the roster's
CRUD, who may write, regional scope, validation with field paths, manager cycles, the open-ticket
load, absences, and the demo roster the dispatch tests and ``make run`` rely on.

The people these tests create have the role ``field-tech`` (no preset resolves it), so other
tests sharing the session database never meet them in a role look-up.
"""

import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from sqlmodel import col, select
from temporalio.client import Client

import store.demo
from api.app import create_app
from models import demo
from models.db import Database
from models.settings import Settings
from models.tables import Actor, ApiKey, Region, Ticket

pytestmark = pytest.mark.asyncio

# The people API never talks to Temporal: the app gets a placeholder instead of a client.
NO_TEMPORAL = cast(Client, object())
ROLE = "field-tech"
OWN_ACTORS = {  # name: (roles, regions)
    "hr-east": (["hr"], ["east"]),
    "agent-east": (["agent"], ["east"]),
    "admin": (["admin"], ["*"]),
}


class People:
    def __init__(self, http: httpx.AsyncClient, db: Database, suffix: str) -> None:
        self.http, self.db, self.suffix = http, db, suffix
        self.team = f"team-{suffix}"

    def who(self, actor: str) -> dict[str, str]:
        """This test's own actors by name, demo actors (``demo-<id>`` keys) by id."""
        if actor in OWN_ACTORS:
            return {"X-API-Key": f"key-{actor}-{self.suffix}"}
        return {"X-API-Key": demo.demo_api_key(actor)}

    def pid(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def body(self, who: str, /, **fields: Any) -> dict[str, Any]:
        return {
            "id": self.pid(who),
            "name": f"Test {who}",
            "roles": [ROLE],
            "regions": ["east"],
            "team": self.team,
            **fields,
        }

    async def get(self, path: str, actor: str = "admin", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.who(actor))

    async def create(self, who: str, /, actor: str = "admin", **fields: Any) -> httpx.Response:
        return await self.http.post("/people", json=self.body(who, **fields), headers=self.who(actor))

    async def patch(self, person_id: str, actor: str = "admin", **fields: Any) -> httpx.Response:
        return await self.http.patch(f"/people/{person_id}", json=fields, headers=self.who(actor))

    async def all_pages(self, actor: str = "admin", **params: Any) -> list[dict[str, Any]]:
        items, cursor = [], None
        while True:
            r = await self.get("/people", actor, **params, **({"cursor": cursor} if cursor else {}))
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            if not (cursor := r.json()["next_cursor"]):
                return items


@pytest.fixture
async def people(db: Database, database_url: str) -> AsyncIterator[People]:
    suffix = uuid.uuid4().hex[:8]
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    async with db.session() as s:
        for name, (roles, regions) in OWN_ACTORS.items():
            s.add(Actor(id=f"{name}-{suffix}", name=name, roles=roles, regions=regions))
            s.add(ApiKey.for_secret(f"{name}-{suffix}", f"key-{name}-{suffix}", created_by="test"))
        await s.commit()
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            yield People(h, db, suffix)
    async with db.session() as s:  # leave no active test people behind for later tests' look-ups
        for actor in (await s.exec(select(Actor).where(col(Actor.id).like(f"%-{suffix}")))).all():
            actor.active = False
            s.add(actor)
        await s.commit()


WEEKDAYS = {
    "timezone": "Asia/Shanghai",
    "hours": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]},
    "holiday_country": "CN",
}
PROFILE = {
    "skills": {"equipment_repair": 4, "hvac": 2},
    "home_lat": 31.2,
    "home_lon": 121.5,
    "capacity": 6,
    "seniority": 3,
    "working_hours": WEEKDAYS,
    "out_of_office": [{"start": "2027-02-10T00:00:00+08:00", "end": "2027-02-17T00:00:00+08:00"}],
    "features": {"rating": 4.4},
    "groups": ["on-call"],
    "manager_id": "sup-zhou",
}


async def test_crud_round_trip_deactivates_and_never_shows_api_keys(people: People):
    r = await people.create("ada", **PROFILE)
    assert r.status_code == 201, r.text
    created = r.json()
    assert "api_key_hash" not in created and "api_key" not in created and created["has_api_key"] is False
    assert {
        k: created[k]
        for k in (
            "skills",
            "home_lat",
            "home_lon",
            "capacity",
            "seniority",
            "features",
            "groups",
            "manager_id",
            "team",
            "active",
            "load",
        )
    } == {
        **{
            k: PROFILE[k]
            for k in ("skills", "home_lat", "home_lon", "capacity", "seniority", "features", "groups", "manager_id")
        },
        "team": people.team,
        "active": True,
        "load": 0,
    }
    assert created["working_hours"]["timezone"] == "Asia/Shanghai"
    assert created["working_hours"]["hours"]["mon"] == [{"start": "09:00", "end": "18:00"}]
    assert created["out_of_office"] == [{"start": "2027-02-09T16:00:00Z", "end": "2027-02-16T16:00:00Z"}]  # UTC
    pid = created["id"]

    assert (await people.get(f"/people/{pid}")).json() == created
    r = await people.create("ada", **PROFILE)
    assert r.status_code == 409 and r.json()["code"] == "conflict"

    # PUT replaces the whole person: what is left out takes its default.
    r = await people.http.put(
        f"/people/{pid}",
        json={"name": "Ada L.", "roles": [ROLE, "agent"], "regions": ["east"]},
        headers=people.who("admin"),
    )
    assert r.status_code == 200, r.text
    replaced = r.json()
    assert (
        replaced["name"],
        replaced["roles"],
        replaced["skills"],
        replaced["team"],
        replaced["capacity"],
        replaced["working_hours"],
        replaced["out_of_office"],
        replaced["manager_id"],
    ) == ("Ada L.", [ROLE, "agent"], {}, None, 10, None, [], None)

    # PATCH changes only what it names.
    r = await people.patch(pid, skills={"network": 5}, capacity=4, team=people.team, home_lat=31.0, home_lon=121.0)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert (patched["name"], patched["skills"], patched["capacity"], patched["home_lat"]) == (
        "Ada L.",
        {"network": 5},
        4,
        31.0,
    )
    r = await people.patch(pid, home_lat=None, home_lon=None)
    assert (r.json()["home_lat"], r.json()["home_lon"]) == (None, None)

    listed = await people.all_pages(team=people.team)
    assert [p["id"] for p in listed] == [pid]

    r = await people.http.delete(f"/people/{pid}", headers=people.who("admin"))
    assert r.status_code == 204 and r.content == b""
    assert (await people.http.delete(f"/people/{pid}", headers=people.who("admin"))).status_code == 204  # again: same
    r = await people.get(f"/people/{pid}")
    assert r.status_code == 200 and r.json()["active"] is False  # the row stays
    async with people.db.session() as s:
        row = await s.get(Actor, pid)
        assert row is not None and row.active is False and row.name == "Ada L."
    assert [p["id"] for p in await people.all_pages(team=people.team, active="false")] == [pid]
    assert await people.all_pages(team=people.team, active="true") == []
    r = await people.patch(pid, active=True)
    assert r.status_code == 200 and r.json()["active"] is True  # reactivated


async def test_writes_need_admin_or_hr_in_the_persons_regions(people: People):
    pid = people.pid("bob")
    for actor in ("agent-east", "eng-li", "sup-zhou"):
        assert (await people.create("bob", actor=actor)).status_code == 403, actor
    # demo HR (every region) hires someone for an ordinary role
    assert (await people.create("bob", actor="hr-tang", roles=["agent"], capacity=0)).status_code == 201
    for actor in ("agent-east", "eng-li"):
        assert (await people.patch(pid, actor=actor, capacity=3)).status_code == 403
        r = await people.http.put(
            f"/people/{pid}", json={"name": "x", "roles": [ROLE], "regions": ["east"]}, headers=people.who(actor)
        )
        assert r.status_code == 403
        assert (await people.http.delete(f"/people/{pid}", headers=people.who(actor))).status_code == 403

    assert (await people.patch(pid, actor="hr-east", capacity=3)).json()["capacity"] == 3
    # HR of east may not place people in south, nor manage people who also work there.
    assert (await people.create("carl", actor="hr-east", roles=["agent"], regions=["south"])).status_code == 403
    assert (await people.patch(pid, actor="hr-east", regions=["east", "south"])).status_code == 403
    assert (await people.create("dana", actor="hr-east", roles=["agent"], regions=["*"])).status_code == 403
    assert (await people.create("erin", regions=["east", "south"])).status_code == 201
    assert (await people.patch(people.pid("erin"), actor="hr-east", capacity=1)).status_code == 403
    # Only an admin gives (or takes) the admin role.
    assert (await people.patch(pid, actor="hr-east", roles=[ROLE, "admin"])).status_code == 403
    assert (await people.patch(pid, actor="admin", roles=[ROLE, "admin"])).status_code == 200
    assert (await people.patch(pid, actor="hr-east", roles=[ROLE])).status_code == 403
    assert (await people.http.delete(f"/people/{pid}", headers=people.who("hr-east"))).status_code == 403
    assert (await people.patch(pid, actor="admin", roles=[ROLE])).json()["roles"] == [ROLE]
    # Nobody deactivates themselves.
    r = await people.http.delete(f"/people/admin-{people.suffix}", headers=people.who("admin"))
    assert r.status_code == 409 and "yourself" in r.json()["detail"]
    assert (await people.patch(f"admin-{people.suffix}", active=False)).status_code == 409
    assert (await people.http.get("/people")).status_code == 401
    assert (await people.http.post("/people", json=people.body("fay"))).status_code == 401


async def test_reads_are_scoped_by_region(people: People):
    r = await people.get("/people", "agent-wang", region="south")
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert (await people.get("/people", "agent-wang", region="north")).status_code == 403
    assert (await people.get("/people", "agent-wang", region="*")).status_code == 403
    r = await people.get("/people/eng-huang", "agent-wang")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert (await people.get("/people/no-such-person", "admin")).status_code == 404
    eng_li = (await people.get("/people/eng-li", "agent-wang")).json()
    assert (eng_li["regions"], eng_li["manager_id"], eng_li["team"]) == (["east"], "sup-zhou", "field-service")
    assert (await people.get("/people/gm-zheng", "agent-wang")).status_code == 200  # works everywhere

    seen = await people.all_pages("agent-wang", limit=200)
    assert all({"east", "*"} & set(p["regions"]) for p in seen)  # people who (also) work in east, or everywhere
    ids = {p["id"] for p in seen}
    assert {"eng-li", "eng-zhao", "eng-e01", "admin"} <= ids and not ids & {"eng-huang", "eng-s01", "eng-n01"}
    south = await people.all_pages("agent-chen", region="south", role="engineer")
    assert {"eng-huang", "eng-s01"} <= {p["id"] for p in south} and all(p["regions"] == ["south"] for p in south)


FIELD_ERRORS = [
    ({"skills": {"hvac": 6}}, ["body", "skills", "hvac"]),
    ({"skills": {"hvac": 0}}, ["body", "skills", "hvac"]),
    ({"seniority": 6}, ["body", "seniority"]),
    ({"seniority": 0}, ["body", "seniority"]),
    ({"capacity": -1}, ["body", "capacity"]),
    ({"home_lat": 31.2}, ["body", "home_lon"]),
    ({"home_lon": 121.5}, ["body", "home_lon"]),
    ({"home_lat": 91, "home_lon": 121.5}, ["body", "home_lat"]),
    ({"home_lat": 31.2, "home_lon": -181}, ["body", "home_lon"]),
    (
        {"out_of_office": [{"start": "2027-01-05T00:00:00Z", "end": "2027-01-04T00:00:00Z"}]},
        ["body", "out_of_office", 0, "end"],
    ),
    (
        {"out_of_office": [{"start": "2027-01-05T00:00:00", "end": "2027-01-06T00:00:00Z"}]},
        ["body", "out_of_office", 0, "start"],
    ),
    (
        {
            "out_of_office": [
                {"start": "2027-01-05T00:00:00Z", "end": "2027-01-08T00:00:00Z"},
                {"start": "2027-01-07T00:00:00Z", "end": "2027-01-09T00:00:00Z"},
            ]
        },
        ["body", "out_of_office"],
    ),
    ({"working_hours": {**WEEKDAYS, "timezone": "Mars/Olympus"}}, ["body", "working_hours", "timezone"]),
    ({"working_hours": {**WEEKDAYS, "hours": {"mon": ["18:00-09:00"]}}}, ["body", "working_hours", "hours", "mon", 0]),
    ({"working_hours": {**WEEKDAYS, "hours": {}}}, ["body", "working_hours"]),
    ({"manager_id": "no-such-person"}, ["body", "manager_id"]),
    ({"regions": []}, ["body", "regions"]),
    ({"regions": ["mars"]}, ["body", "regions", 0]),
    ({"roles": []}, ["body", "roles"]),
    ({"name": ""}, ["body", "name"]),
    ({"id": "has spaces"}, ["body", "id"]),
    ({"api_key_hash": "0" * 64}, ["body", "api_key_hash"]),
    ({"api_key": "secret"}, ["body", "api_key"]),
    ({"features": {"rating": "high"}}, ["body", "features", "rating"]),
]


async def test_validation_failures_name_their_field(people: People):
    for i, (fields, loc) in enumerate(FIELD_ERRORS):
        r = await people.create(f"v{i}", **fields)
        assert r.status_code == 422, (fields, r.text)
        assert loc in [e["loc"] for e in r.json()["detail"]], (fields, r.json())
    assert (await people.get("/people/v0-" + people.suffix)).status_code == 404  # nothing was created

    pid = (await people.create("val")).json()["id"]
    for fields, loc in [
        ({"home_lat": 31.0}, ["body", "home_lon"]),  # the merged person would have half a home
        ({"seniority": 9}, ["body", "seniority"]),
        ({"skills": {"hvac": 7}}, ["body", "skills", "hvac"]),
        ({"name": None}, ["body", "name"]),
        ({"regions": []}, ["body", "regions"]),
        ({"regions": ["mars"]}, ["body", "regions", 0]),
        ({"manager_id": "no-such-person"}, ["body", "manager_id"]),
        ({"api_key_hash": "0" * 64}, ["body", "api_key_hash"]),
    ]:
        r = await people.patch(pid, **fields)
        assert r.status_code == 422, (fields, r.text)
        assert loc in [e["loc"] for e in r.json()["detail"]], (fields, r.json())
    whole = {"name": "x", "roles": [ROLE], "regions": ["east"], "capacity": -2}
    r = await people.http.put(f"/people/{pid}", json=whole, headers=people.who("admin"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "capacity"]
    assert (await people.get("/people", "admin", cursor="***")).json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_manager_chain_may_not_loop(people: People):
    a = (await people.create("mgr-a", manager_id="sup-zhou")).json()["id"]
    b = (await people.create("mgr-b", manager_id=a)).json()["id"]
    c = (await people.create("mgr-c", manager_id=b)).json()["id"]
    for manager in (a, b, c):
        r = await people.patch(a, manager_id=manager)
        assert r.status_code == 422, manager
        assert r.json()["detail"][0]["loc"] == ["body", "manager_id"]
        assert r.json()["detail"][0]["type"] == "manager_cycle"
    r = await people.http.put(
        f"/people/{a}",
        json={"name": "A", "roles": [ROLE], "regions": ["east"], "manager_id": c},
        headers=people.who("admin"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "manager_cycle"
    assert (await people.patch(c, manager_id=a)).status_code == 200  # skipping a level is no cycle
    assert (await people.patch(a, manager_id=None)).json()["manager_id"] is None


async def test_load_counts_the_open_tickets_of_the_read_model(people: People):
    pid = (await people.create("busy", capacity=5)).json()["id"]
    other = (await people.create("idle")).json()["id"]
    now = datetime.now(UTC)
    async with people.db.session() as s:
        for n, (status, assignee) in enumerate(
            [
                ("new", pid),
                ("assigned", pid),
                ("in_progress", pid),
                ("in_progress", pid),
                ("resolved", pid),
                ("closed", pid),
                ("cancelled", pid),
                ("assigned", other),
            ]
        ):
            s.add(
                Ticket(
                    id=f"TP{people.suffix}{n}",
                    ticket_type="general",
                    region="east",
                    priority="normal",
                    status=status,
                    assignee=assignee,
                    title="load",
                    channel="agent",
                    created_by="agent-wang",
                    created_at=now,
                    updated_at=now,
                )
            )
        await s.commit()
    assert (await people.get(f"/people/{pid}")).json()["load"] == 4
    assert (await people.get(f"/people/{other}")).json()["load"] == 1
    listed = {p["id"]: p["load"] for p in await people.all_pages(team=people.team)}
    assert listed == {pid: 4, other: 1}


async def test_absences_by_the_person_or_an_admin(people: People):
    pid = people.pid("self")
    assert (await people.create("self")).status_code == 201
    async with people.db.session() as s:  # give them a key so they can act themselves
        s.add(ApiKey.for_secret(pid, f"key-self-{people.suffix}", created_by="test"))
        await s.commit()
    me = {"X-API-Key": f"key-self-{people.suffix}"}
    week = {"start": "2027-03-01T09:00:00+08:00", "end": "2027-03-08T09:00:00+08:00"}

    r = await people.http.post(f"/people/{pid}/out-of-office", json=week, headers=me)
    assert r.status_code == 201, r.text
    assert r.json()["out_of_office"] == [{"start": "2027-03-01T01:00:00Z", "end": "2027-03-08T01:00:00Z"}]
    r = await people.http.post(f"/people/{pid}/out-of-office", json=week, headers=me)
    assert r.status_code == 200 and len(r.json()["out_of_office"]) == 1  # the same period again: no change
    clash = {"start": "2027-03-07T00:00:00Z", "end": "2027-03-10T00:00:00Z"}
    r = await people.http.post(f"/people/{pid}/out-of-office", json=clash, headers=me)
    assert r.status_code == 409 and r.json()["start"] == "2027-03-01T01:00:00+00:00"
    bad = {"start": "2027-03-10T00:00:00Z", "end": "2027-03-09T00:00:00Z"}
    r = await people.http.post(f"/people/{pid}/out-of-office", json=bad, headers=me)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "end"]
    earlier = {"start": "2027-01-04T00:00:00Z", "end": "2027-01-05T00:00:00Z"}
    r = await people.http.post(f"/people/{pid}/out-of-office", json=earlier, headers=people.who("admin"))
    assert r.status_code == 201 and [a["start"] for a in r.json()["out_of_office"]] == [
        "2027-01-04T00:00:00Z",
        "2027-03-01T01:00:00Z",
    ]  # kept in order
    for actor in ("agent-east", "eng-li"):
        r = await people.http.post(f"/people/{pid}/out-of-office", json=earlier, headers=people.who(actor))
        assert r.status_code == 403, actor
    r = await people.http.post("/people/eng-huang/out-of-office", json=earlier, headers=people.who("hr-east"))
    assert r.status_code == 404  # out of scope

    delete = f"/people/{pid}/out-of-office"
    r = await people.http.delete(delete, params={"start": "2027-03-01T09:00:00+08:00"}, headers=me)
    assert r.status_code == 204
    r = await people.http.delete(delete, params={"start": "2027-03-01T01:00:00Z"}, headers=people.who("admin"))
    assert r.status_code == 404  # gone already
    r = await people.http.delete(delete, params={"start": "2027-01-04T00:00:00"}, headers=me)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "start"]  # no UTC offset
    r = await people.http.delete(delete, params={"start": "2027-01-04T00:00:00Z"}, headers=people.who("agent-east"))
    assert r.status_code == 403
    r = await people.http.delete(delete, params={"start": "2027-01-04T00:00:00Z"}, headers=people.who("admin"))
    assert r.status_code == 204
    assert (await people.get(f"/people/{pid}")).json()["out_of_office"] == []


async def test_lists_filter_and_page_by_id(people: People):
    for n in range(5):
        r = await people.create(f"pg{n}", skills={"network": 2} if n % 2 else {"hvac": 3})
        assert r.status_code == 201
    pages = []
    cursor = None
    while True:
        r = await people.get("/people", team=people.team, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append([p["id"] for p in r.json()["items"]])
        if not (cursor := r.json()["next_cursor"]):
            break
    assert pages == [[people.pid(f"pg{n}") for n in ns] for ns in ((0, 1), (2, 3), (4,))]
    hvac = await people.all_pages(team=people.team, skill="hvac")
    assert [p["id"] for p in hvac] == [people.pid(f"pg{n}") for n in (0, 2, 4)]
    assert await people.all_pages(team=people.team, role="engineer") == []
    assert len(await people.all_pages(team=people.team, role=ROLE, region="east")) == 5
    assert await people.all_pages(team=people.team, region="south") == []

    north_hvac = await people.all_pages(region="north", skill="hvac", role="engineer", limit=3)
    assert north_hvac and all("hvac" in p["skills"] and p["regions"] == ["north"] for p in north_hvac)


async def test_teams_count_members_per_region_with_their_managers(people: People):
    teams = {(t["kind"], t["name"]): t for t in (await people.get("/teams", "admin")).json()}
    field = teams[("team", "field-service")]
    assert set(field["regions"]) == {"east", "south", "north"}
    assert field["members"] == sum(field["regions"].values())
    counts = [m["members"] for m in field["managers"]]
    assert counts == sorted(counts, reverse=True)  # most members first
    assert {"sup-zhou", "sup-lin", "sup-guo"} <= {m["id"] for m in field["managers"][:3]}
    assert {("team", "installation"), ("team", "hvac"), ("group", "on-call")} <= set(teams)

    east_view = {(t["kind"], t["name"]): t for t in (await people.get("/teams", "agent-wang")).json()}
    assert set(east_view[("team", "field-service")]["regions"]) == {"east"}
    assert {m["id"] for m in east_view[("team", "field-service")]["managers"]} == {"sup-zhou"}


async def test_demo_roster_has_sixty_engineers_over_three_regions(people: People):
    engineers = await people.all_pages(role="engineer", active="true", limit=200)
    generated = [p for p in engineers if p["id"][:5] in ("eng-e", "eng-s", "eng-n") and p["id"][5:].isdigit()]
    assert len(generated) >= 60
    by_region = Counter(p["regions"][0] for p in generated)
    assert set(by_region) == {"east", "south", "north"} and min(by_region.values()) >= 15
    share = lambda skill: sum(skill in p["skills"] for p in generated) / len(generated)  # noqa: E731
    assert share("equipment_repair") >= 0.8 and share("installation") >= 0.5
    supervisors = {"east": "sup-zhou", "south": "sup-lin", "north": "sup-guo"}
    centres = {"east": (31.23, 121.47), "south": (22.54, 114.06), "north": (39.90, 116.40)}
    for p in generated:
        region = p["regions"][0]
        assert p["roles"] == ["engineer"] and p["manager_id"] == supervisors[region], p["id"]
        assert p["team"] in ("field-service", "installation", "hvac")
        assert 2 <= len(p["skills"]) <= 4 and set(p["skills"]) <= {
            "equipment_repair",
            "installation",
            "hvac",
            "electrical",
            "refrigeration",
            "network",
        }
        assert all(1 <= v <= 5 for v in p["skills"].values())
        assert 1 <= p["seniority"] <= 5 and 3 <= p["capacity"] <= 8 and 3.0 <= p["features"]["rating"] <= 5.0
        assert _km(centres[region], (p["home_lat"], p["home_lon"])) <= 32, p["id"]
        for absence in p["out_of_office"]:
            assert 2026 <= datetime.fromisoformat(absence["start"]).year <= 2027
    assert sum(p["seniority"] >= 4 for p in generated) >= 3
    with_hours = sum(p["working_hours"] is not None for p in generated) / len(generated)
    assert 0.25 <= with_hours <= 0.45
    assert 3 <= sum(bool(p["out_of_office"]) for p in generated) <= 12

    # The named people are unchanged, with profiles of their own.
    named = {p["id"]: p for p in engineers}
    assert (named["eng-li"]["regions"], named["eng-li"]["manager_id"]) == (["east"], "sup-zhou")
    assert (named["eng-zhao"]["regions"], named["eng-zhao"]["manager_id"]) == (["east"], "sup-zhou")
    assert named["eng-huang"]["regions"] == ["south"]
    assert all(named[i]["skills"] and named[i]["home_lat"] for i in ("eng-li", "eng-zhao", "eng-huang"))
    for sup, manager in (("sup-lin", "mgr-luo"), ("sup-guo", "mgr-feng")):
        p = (await people.get(f"/people/{sup}")).json()
        assert "supervisor" in p["roles"] and p["manager_id"] == manager
    async with people.db.session() as s:
        north = await s.get(Region, "north")
        assert north is not None and north.timezone == "Asia/Shanghai"
        assert north.calendar["holiday_country"] == "CN" and set(north.calendar["hours"]) == {
            "mon",
            "tue",
            "wed",
            "thu",
            "fri",
        }
        key = (await s.exec(select(ApiKey).where(ApiKey.key_hash == ApiKey.hash("demo-eng-e01")))).one()
        assert (key.actor_id, key.expires_at, key.revoked_at) == ("eng-e01", None, None)  # never expires
    # Loading the demo again changes nothing (merge).
    assert len({a.id for a in demo.ACTORS}) == len(demo.ACTORS)
    await store.demo.load_people(people.db)
    again = await people.all_pages(role="engineer", active="true", limit=200)
    assert again == engineers


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


async def test_demo_roster_is_the_same_on_every_build():
    """Seeded: building the roster again gives the same people, homes, skills and absences."""
    rebuilt = {a.id: a.model_dump() for a in (demo._actor(*row) for row in demo._roster())}
    assert {a.id: a.model_dump() for a in demo.ACTORS if a.id in rebuilt} == rebuilt


# --- who may grant what (issue #9: privilege escalation) ---


async def test_hr_may_not_grant_itself_or_anyone_a_privileged_role(people: People):
    # The probe of the issue: HR makes itself finance, general manager and process admin.
    r = await people.patch("hr-tang", actor="hr-tang", roles=["hr", "finance", "general_manager", "process_admin"])
    assert r.status_code == 403, r.text
    assert (await people.get("/people/hr-tang")).json()["roles"] == ["hr"]

    pid = (await people.create("grantee", roles=["engineer"], capacity=0)).json()["id"]
    for roles in (
        ["engineer", "finance"],
        ["engineer", "supervisor"],
        ["engineer", "admin"],
        ["engineer", "hr"],
        ["engineer", "channel"],
        ["engineer", "made-up-role"],
    ):
        for hr in ("hr-tang", "hr-east"):
            r = await people.patch(pid, actor=hr, roles=roles)
            assert r.status_code == 403, (hr, roles, r.text)
    r = await people.create("hired", actor="hr-tang", roles=["general_manager"])
    assert r.status_code == 403, r.text
    r = await people.http.put(
        f"/people/{pid}", json={"name": "x", "roles": ["legal"], "regions": ["east"]}, headers=people.who("hr-east")
    )
    assert r.status_code == 403
    # Ordinary roles are hr's to give and take.
    r = await people.patch(pid, actor="hr-east", roles=["engineer", "warehouse", "qc"])
    assert r.status_code == 200 and r.json()["roles"] == ["engineer", "warehouse", "qc"], r.text
    assert (await people.patch(pid, actor="hr-tang", roles=["agent"])).status_code == 200
    # Taking a privileged role away follows the same table.
    assert (await people.patch(pid, actor="admin", roles=["agent", "supervisor"])).status_code == 200
    r = await people.patch(pid, actor="hr-east", roles=["agent"])
    assert r.status_code == 403, r.text
    assert (await people.patch(pid, actor="hr-east", capacity=1)).status_code == 200  # other fields: fine
    r = await people.patch(pid, actor="hr-tang", regions=["east", "south"])  # a supervisor of one more region
    assert r.status_code == 403, r.text
    assert (await people.patch(pid, actor="admin", roles=["agent"])).status_code == 200
    assert (await people.patch(pid, actor="admin", roles=["agent", "system"])).status_code == 403  # nobody


async def test_nobody_changes_their_own_roles_or_regions(people: People):
    me = f"admin-{people.suffix}"
    for fields in ({"roles": ["admin", "hr"]}, {"roles": ["hr"]}, {"regions": ["east"]}):
        r = await people.patch(me, actor="admin", **fields)
        assert r.status_code == 403, (fields, r.text)
    r = await people.http.put(
        f"/people/{me}",
        json={"name": "me", "roles": ["admin", "finance"], "regions": ["*"]},
        headers=people.who("admin"),
    )
    assert r.status_code == 403
    hr = f"hr-east-{people.suffix}"
    assert (await people.patch(hr, actor="hr-east", regions=["east", "south"])).status_code == 403
    assert (await people.patch(hr, actor="hr-east", roles=["hr", "agent"])).status_code == 403
    assert (await people.patch(hr, actor="hr-east", capacity=4)).status_code == 200  # the rest of their profile
    assert (await people.patch(hr, actor="admin", roles=["hr", "agent"])).status_code == 200  # someone else may


# --- exposure (issue #9): machine accounts and personal data ---


async def test_channel_gateways_do_not_read_the_roster(people: People):
    for path in ("/people", "/teams", "/people/eng-li", "/people/hr-tang"):
        r = await people.get(path, "gateway-qr")
        assert r.status_code == 403, (path, r.text)
    r = await people.get("/people/gateway-qr", "gateway-qr")  # itself: yes (its keys, its profile)
    assert r.status_code == 200 and r.json()["id"] == "gateway-qr"


async def test_homes_and_absences_only_for_hr_admin_and_the_person(people: People):
    pid = (
        await people.create(
            "private",
            roles=["engineer"],
            capacity=0,
            manager_id="sup-zhou",
            **{k: PROFILE[k] for k in ("home_lat", "home_lon", "out_of_office", "working_hours")},
        )
    ).json()["id"]
    full = (await people.get(f"/people/{pid}", "admin")).json()
    assert (full["home_lat"], full["home_lon"]) == (PROFILE["home_lat"], PROFILE["home_lon"])
    assert full["out_of_office"] and full["redacted"] == []
    for who in ("hr-tang", "hr-east"):
        assert (await people.get(f"/people/{pid}", who)).json() == full, who

    for who in ("agent-wang", "eng-li", "mgr-sun", "agent-east"):
        seen = (await people.get(f"/people/{pid}", who)).json()
        assert (seen["home_lat"], seen["home_lon"], seen["out_of_office"]) == (None, None, []), who
        assert {"home_lat", "home_lon", "out_of_office"} <= set(seen["redacted"]), who
        assert seen["has_api_key"] is None, who
        assert (seen["name"], seen["skills"], seen["working_hours"]) == (
            full["name"],
            full["skills"],
            full["working_hours"],
        ), who
    # Their own manager sees when they are away (not where they live).
    boss = (await people.get(f"/people/{pid}", "sup-zhou")).json()
    assert boss["out_of_office"] == full["out_of_office"] and boss["home_lat"] is None

    # Lists the same: a supervisor still sees the names of their region's engineers, not their homes.
    listed = {p["id"]: p for p in await people.all_pages("sup-zhou", region="east", role="engineer", limit=200)}
    assert {"eng-li", "eng-e01", pid} <= set(listed)
    assert all(p["home_lat"] is None for p in listed.values())
    assert (await people.get("/people/eng-li", "eng-li")).json()["home_lat"] is not None  # themselves


async def test_hr_may_not_make_itself_or_anyone_without_a_managing_role_a_manager(stack):
    """Attacker review: hr set agent-wang's manager to hr-tang, and then alone approved the
    agent's discount (its first level goes to the requester's manager)."""
    hr = stack.as_actor("hr-tang")
    for person in ("agent-wang", "mgr-sun"):
        r = await stack.http.patch(f"/people/{person}", json={"manager_id": "hr-tang"}, headers=hr)
        assert r.status_code == 403, r.text
    r = await stack.http.patch("/people/agent-wang", json={"manager_id": "eng-li"}, headers=hr)
    assert r.status_code == 403, r.text  # an engineer does not lead people
    assert (await stack.http.get("/people/agent-wang", headers=hr)).json()["manager_id"] == "mgr-sun"
    r = await stack.http.patch(
        "/people/agent-wang", json={"manager_id": "mgr-sun", "name": "Wang Fang (agent, east)"}, headers=hr
    )
    assert r.status_code == 200, r.text  # an unchanged manager needs no check
