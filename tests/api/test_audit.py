"""The audit log (issue #9, "Trust"): changes to people, roles, keys, templates and prices are
recorded — who, with which credential, when, before and after — in the same transaction as the
change, and only admins read them (``GET /audit``, newest first, keyset pages)."""

import copy
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from sqlmodel import col, select
from temporalio.client import Client

from api.app import create_app
from models import demo
from models.db import Database
from models.demo_pricing import DEMO_PRICING
from models.settings import Settings
from models.tables import Actor, Region
from tests.support import preset

pytestmark = pytest.mark.asyncio

NO_TEMPORAL = cast(Client, object())
ROLE = "field-tech"


def who(actor: str) -> dict[str, str]:
    return {"X-API-Key": demo.demo_api_key(actor)}


class Audit:
    def __init__(self, http: httpx.AsyncClient, suffix: str) -> None:
        self.http, self.suffix = http, suffix

    def pid(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    async def log(self, actor: str = "admin", **params: Any) -> list[dict[str, Any]]:
        r = await self.http.get("/audit", params=params, headers=who(actor))
        assert r.status_code == 200, r.text
        return r.json()["items"]

    async def current_key(self, actor: str) -> str:
        listed = (await self.http.get(f"/people/{actor}/api-keys", headers=who(actor))).json()
        return next(k["id"] for k in listed if k["current"])


@pytest.fixture
async def audit(db: Database, database_url: str) -> AsyncIterator[Audit]:
    suffix = uuid.uuid4().hex[:8]
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            yield Audit(h, suffix)
    async with db.session() as s:  # leave no active test people behind
        for row in (await s.exec(select(Actor).where(col(Actor.id).like(f"%-{suffix}")))).all():
            row.active = False
            s.add(row)
        await s.commit()


async def test_people_roles_and_keys_are_recorded_with_who_and_how(audit: Audit):
    pid = audit.pid("ann")
    body = {"id": pid, "name": "Ann", "roles": [ROLE], "regions": ["east"], "home_lat": 31.2, "home_lon": 121.5}
    assert (await audit.http.post("/people", json=body, headers=who("admin"))).status_code == 201
    r = await audit.http.patch(f"/people/{pid}", json={"capacity": 3}, headers=who("hr-tang"))
    assert r.status_code == 200, r.text
    r = await audit.http.patch(f"/people/{pid}", json={"roles": [ROLE, "supervisor"]}, headers=who("admin"))
    assert r.status_code == 200, r.text
    r = await audit.http.post(f"/people/{pid}/api-keys", json={"label": "phone"}, headers=who("admin"))
    assert r.status_code == 201, r.text
    issued = r.json()
    r = await audit.http.delete(f"/people/{pid}/api-keys/{issued['id']}", headers=who("hr-tang"))
    assert r.status_code == 204
    assert (await audit.http.delete(f"/people/{pid}", headers=who("admin"))).status_code == 204

    entries = await audit.log(target_type="person", target_id=pid)
    assert [e["action"] for e in entries] == [  # newest first
        "person.deactivate",
        "api_key.revoke",
        "api_key.issue",
        "role.grant",
        "person.update",
        "person.create",
    ]
    by = {e["action"]: e for e in entries}
    admin_key, hr_key = await audit.current_key("admin"), await audit.current_key("hr-tang")
    assert (by["person.create"]["actor_id"], by["person.create"]["credential"]) == ("admin", admin_key)
    assert by["person.create"]["before"] is None and by["person.create"]["after"]["roles"] == [ROLE]
    assert (by["person.update"]["actor_id"], by["person.update"]["credential"]) == ("hr-tang", hr_key)
    assert (by["person.update"]["before"], by["person.update"]["after"]) == ({"capacity": 10}, {"capacity": 3})
    assert (by["role.grant"]["before"], by["role.grant"]["after"]) == (
        {"roles": [ROLE]},
        {"roles": [ROLE, "supervisor"]},
    )
    assert by["api_key.issue"]["after"]["key_id"] == issued["id"]
    assert by["api_key.issue"]["after"]["label"] == "phone"
    assert (by["api_key.revoke"]["actor_id"], by["api_key.revoke"]["before"]["key_id"]) == ("hr-tang", issued["id"])
    assert by["person.deactivate"]["after"]["active"] is False
    assert all(e["target_type"] == "person" and e["target_id"] == pid and e["at"] for e in entries)
    text = json.dumps(entries)
    assert issued["api_key"] not in text and hashlib.sha256(issued["api_key"].encode()).hexdigest() not in text

    # Refused changes leave no trace.
    assert (
        await audit.http.patch(f"/people/{pid}", json={"capacity": 1}, headers=who("agent-wang"))
    ).status_code == 403
    r = await audit.http.patch("/people/hr-tang", json={"roles": ["hr", "finance"]}, headers=who("hr-tang"))
    assert r.status_code == 403
    assert len(await audit.log(target_type="person", target_id=pid)) == len(entries)
    assert not [
        e
        for e in await audit.log(target_type="person", target_id="hr-tang", limit=200)
        if e["action"] == "role.grant" and e["actor_id"] == "hr-tang"
    ]


async def test_templates_and_price_rules_are_recorded(audit: Audit, db: Database):
    spec = copy.deepcopy(preset("general").spec.model_dump(mode="json"))
    key = f"audit_{audit.suffix}"
    spec |= {"key": key, "name": "Audited", "classification": []}
    r = await audit.http.post("/templates", json=spec, headers=who("tmpl-admin"))
    assert r.status_code == 201, r.text
    assert (await audit.http.post("/templates", json=spec, headers=who("tmpl-admin"))).status_code == 200
    spec["description"] = "edited"
    assert (await audit.http.post("/templates", json=spec, headers=who("tmpl-admin"))).json()["version"] == 2
    entries = await audit.log(target_type="template", target_id=key)
    assert [(e["action"], e["actor_id"], e["before"], e["after"]["version"]) for e in entries] == [
        ("template.publish", "tmpl-admin", {"version": 1}, 2),
        ("template.publish", "tmpl-admin", None, 1),  # publishing the same content again records nothing
    ]
    assert entries[0]["credential"] == await audit.current_key("tmpl-admin")

    region = f"audit{audit.suffix}"
    async with db.session() as s:
        s.add(Region(code=region, name="Audit test"))
        await s.commit()
    for version in ("1", "2"):
        rules = DEMO_PRICING["east"].model_dump(mode="json") | {"region": region, "version": version}
        r = await audit.http.put(f"/pricing/{region}", json=rules, headers=who("fin-qian"))
        assert r.status_code == 201, r.text
    entries = await audit.log(target_type="price_rules", target_id=region)
    assert [(e["action"], e["actor_id"], e["before"], e["after"]["version"]) for e in entries] == [
        ("price_rules.publish", "fin-qian", {"version": "1"}, "2"),
        ("price_rules.publish", "fin-qian", None, "1"),
    ]


async def test_only_admins_of_every_region_read_the_log_in_pages(audit: Audit):
    for who_ in ("hr-tang", "agent-wang", "gm-zheng", "gateway-qr", "fin-qian"):
        assert (await audit.http.get("/audit", headers=who(who_))).status_code == 403, who_
    assert (await audit.http.get("/audit")).status_code == 401
    east_admin = audit.pid("east-admin")
    body = {"id": east_admin, "name": "East admin", "roles": ["admin"], "regions": ["east"]}
    assert (await audit.http.post("/people", json=body, headers=who("admin"))).status_code == 201
    key = (await audit.http.post(f"/people/{east_admin}/api-keys", json={}, headers=who("admin"))).json()["api_key"]
    assert (await audit.http.get("/audit", headers={"X-API-Key": key})).status_code == 403  # one region only

    pids = [audit.pid(f"p{n}") for n in range(5)]
    for pid in pids:
        body = {"id": pid, "name": pid, "roles": ["logistics"], "regions": ["east"], "capacity": 0}
        assert (await audit.http.post("/people", json=body, headers=who("hr-tang"))).status_code == 201
    pages, cursor = [], None
    while True:
        params = {
            "actor_id": "hr-tang",
            "action": "person.create",
            "limit": 2,
            **({"cursor": cursor} if cursor else {}),
        }
        r = await audit.http.get("/audit", params=params, headers=who("admin"))
        assert r.status_code == 200, r.text
        pages.append([e["target_id"] for e in r.json()["items"]])
        cursor = r.json()["next_cursor"]
        if not cursor or sum(t.endswith(audit.suffix) for page in pages for t in page) >= len(pids):
            break
    assert [t for page in pages for t in page if t.endswith(audit.suffix)] == list(reversed(pids))  # newest first
    assert all(len(page) == 2 for page in pages[:-1]) and len(pages) >= 3
    for params, loc in (
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"cursor": "***"}, ["query", "cursor"]),
    ):
        r = await audit.http.get("/audit", params=params, headers=who("admin"))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, (params, r.text)
