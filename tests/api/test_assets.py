"""/assets, /contracts, /sla-tiers and /exchange-rates over HTTP against the real app and the real
database: registering an asset (its QR code), its warranty and contract status, repair history,
contracts and tiers, the rate table — each with its negatives: another region is a 404, a
channel account a 403, bad input a 422 naming the field, a taken serial or number a 409.

Customers are inserted as rows (``models.customer_tables.Customer``): these tests do not depend
on the customers API. Every name a test makes carries its own suffix.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import col, select
from temporalio.client import Client

import store.rates
from api.app import create_app
from models import demo
from models.customer_tables import Customer, CustomerOrder
from models.db import Database
from models.settings import Settings
from models.tables import AuditLog, Ticket

pytestmark = pytest.mark.asyncio

NO_TEMPORAL = cast(Client, object())  # these endpoints never talk to Temporal
# "Today" where the demo regions are: warranty and contract status go by the asset region's date.
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


def who(actor: str) -> dict[str, str]:
    return {"X-API-Key": demo.demo_api_key(actor)}


class World:
    """An httpx client on the app, and rows written straight into its database."""

    def __init__(self, http: httpx.AsyncClient, db: Database, app: Any) -> None:
        self.http, self.db, self.app = http, db, app
        self.suffix = uuid.uuid4().hex[:8].upper()
        self.n = 0

    def unique(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.suffix}-{self.n}"

    async def customer(self, region: str = "east", merged_into: str | None = None, **fields: Any) -> str:
        cid = "cus_" + uuid.uuid4().hex[:20]
        now = datetime.now(UTC)
        async with self.db.session() as s:
            s.add(
                Customer(
                    id=cid,
                    name=fields.pop("name", f"Customer {cid[-6:]}"),
                    region=region,
                    referral_code="R" + uuid.uuid4().hex[:12].upper(),
                    merged_into=merged_into,
                    created_at=now,
                    updated_at=now,
                    **fields,
                )
            )
            await s.commit()
        return cid

    async def ticket(
        self,
        customer_id: str | None,
        asset_id: str | None = None,
        region: str = "east",
        at: datetime | None = None,
        satisfaction: int | None = None,
        status: str = "closed",
    ) -> str:
        tid = "T" + uuid.uuid4().hex[:16].upper()
        at = at or datetime.now(UTC)
        async with self.db.session() as s:
            s.add(
                Ticket(
                    id=tid,
                    ticket_type="equipment_repair",
                    region=region,
                    priority="normal",
                    status=status,
                    title=f"Repair {tid}",
                    channel="agent",
                    customer_id=customer_id,
                    asset_id=asset_id,
                    satisfaction=satisfaction,
                    created_by="agent-wang",
                    created_at=at,
                    updated_at=at,
                    closed_at=at + timedelta(hours=3) if status == "closed" else None,
                )
            )
            await s.commit()
        return tid

    async def order(self, customer_id: str, placed_at: datetime, amount: str = "1200.00") -> str:
        ref = self.unique("SO")
        async with self.db.session() as s:
            s.add(
                CustomerOrder(
                    customer_id=customer_id,
                    source="erp",
                    external_ref=ref,
                    placed_at=placed_at,
                    status="paid",
                    amount=Decimal(amount),
                    currency="CNY",
                    summary="chiller",
                )
            )
            await s.commit()
        return ref

    async def asset(self, customer_id: str, actor: str | None = None, **fields: Any) -> dict[str, Any]:
        """Registered by an agent; with warranty fields, by a supervisor (a warranty moves money)."""
        actor = actor or ("sup-zhou" if {"warranty_end", "warranty_covers"} & fields.keys() else "agent-wang")
        body = {"customer_id": customer_id, "serial": self.unique("SN"), "model": "Carrier 30XA", **fields}
        r = await self.http.post("/assets", json=body, headers=who(actor))
        assert r.status_code == 201, r.text
        return r.json()

    async def tier(self, **fields: Any) -> str:
        code = self.unique("tier").lower()
        body = {"name": "Gold", "response_minutes": 60, "resolution_minutes": 480, **fields}
        r = await self.http.put(f"/sla-tiers/{code}", json=body, headers=who("mgr-sun"))
        assert r.status_code == 201, r.text
        return code

    async def contract(self, customer_id: str, actor: str = "sup-zhou", **fields: Any) -> dict[str, Any]:
        body = {
            "number": self.unique("SC"),
            "customer_id": customer_id,
            "valid_from": str(TODAY - timedelta(days=30)),
            "valid_to": str(TODAY + timedelta(days=335)),
            **fields,
        }
        r = await self.http.post("/contracts", json=body, headers=who(actor))
        assert r.status_code == 201, r.text
        return r.json()

    async def get(self, path: str, actor: str = "agent-wang", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=who(actor))


@asynccontextmanager
async def open_world(db: Database, database_url: str) -> AsyncIterator[World]:
    """The app (without Temporal) on the suite's database, and a ``World`` on it."""
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            yield World(h, db, app)


@pytest.fixture
async def world(db: Database, database_url: str) -> AsyncIterator[World]:
    async with open_world(db, database_url) as w:
        yield w


def problem_locs(r: httpx.Response) -> list[list[Any]]:
    assert r.status_code == 422, r.text
    return [p["loc"] for p in r.json()["detail"]]


# --- assets ---


async def test_an_asset_is_registered_with_an_unguessable_qr_code_and_read_four_ways(world: World):
    cus = await world.customer()
    body = {
        "site_address": "88 Century Ave, Pudong",
        "lat": 31.2304,
        "lon": 121.4737,
        "installed_on": str(TODAY - timedelta(days=300)),
        "warranty_end": str(TODAY + timedelta(days=65)),
        "warranty_covers": "parts",
    }
    created = await world.asset(cus, **body)
    assert created["id"].startswith("ast_") and created["customer_id"] == cus and created["region"] == "east"
    assert {k: created[k] for k in body} == body
    assert created["warranty"] == {
        "in_warranty": True,
        "until": body["warranty_end"],
        "covers": "parts",
        "days_left": 65,
    }
    assert created["contract"] is None
    # The QR code is random (32 URL-safe characters from 24 random bytes), not derived from the serial.
    other = await world.asset(cus)
    assert len(created["qr_code"]) == 32 and created["qr_code"] != other["qr_code"]

    aid = created["id"]
    for path in (f"/assets/{aid}", f"/assets/by-qr/{created['qr_code']}", f"/assets/by-serial/{created['serial']}"):
        r = await world.get(path, "eng-li")  # any staff of the region reads
        assert r.status_code == 200 and r.json() == created, (path, r.text)
    listed = (await world.get("/assets", customer_id=cus)).json()
    assert [a["id"] for a in listed["items"]] == [other["id"], aid]  # newest first
    assert (await world.get("/assets", serial=created["serial"])).json()["items"] == [created]

    r = await world.http.patch(
        f"/assets/{aid}", json={"site_address": "Dock 4", "lat": None, "lon": None}, headers=who("sales-gao")
    )
    assert r.status_code == 200, r.text
    assert (r.json()["site_address"], r.json()["lat"], r.json()["lon"], r.json()["qr_code"]) == (
        "Dock 4",
        None,
        None,
        created["qr_code"],
    )
    async with world.db.session() as s:
        actions = (
            await s.exec(select(AuditLog.action).where(AuditLog.target_id == aid).order_by(col(AuditLog.id)))
        ).all()
    assert list(actions) == ["asset.create", "asset.update"]


async def test_warranty_status_follows_the_calendar(world: World):
    cus = await world.customer()
    last_day = await world.asset(cus, warranty_end=str(TODAY + timedelta(days=1)))
    expired = await world.asset(cus, warranty_end=str(TODAY - timedelta(days=2)))
    none = await world.asset(cus)
    assert last_day["warranty"]["in_warranty"] is True and last_day["warranty"]["days_left"] == 1
    assert expired["warranty"] == {
        "in_warranty": False,
        "until": str(TODAY - timedelta(days=2)),
        "covers": None,
        "days_left": None,
    }
    assert none["warranty"] == {"in_warranty": False, "until": None, "covers": None, "days_left": None}


async def test_assets_are_scoped_by_region_and_refused_to_channel_accounts(world: World):
    cus = await world.customer()
    asset = await world.asset(cus)
    aid, qr, serial = asset["id"], asset["qr_code"], asset["serial"]
    for path in (f"/assets/{aid}", f"/assets/by-qr/{qr}", f"/assets/by-serial/{serial}", f"/assets/{aid}/tickets"):
        r = await world.get(path, "agent-chen")  # south
        assert r.status_code == 404 and r.json()["code"] == "not_found", (path, r.text)
        assert qr not in r.text
        r = await world.get(path, "gateway-qr")  # a channel account, though of every region
        assert r.status_code == 403, (path, r.text)
        assert (await world.get(path, "admin")).status_code == 200
    assert aid not in (await world.get("/assets", "agent-chen")).text
    assert (await world.get("/assets", "agent-chen", customer_id=cus)).status_code == 404
    assert (await world.get("/assets", "gateway-qr")).status_code == 403
    r = await world.http.patch(f"/assets/{aid}", json={"model": "X"}, headers=who("agent-chen"))
    assert r.status_code == 404
    r = await world.http.post(
        "/assets", json={"customer_id": cus, "serial": "SN-X", "model": "m"}, headers=who("gateway-qr")
    )
    assert r.status_code == 403

    # Unknown QR codes and serials are 404s, and so is an id that does not exist.
    assert (await world.get("/assets/by-qr/" + "A" * 32, "admin")).status_code == 404
    assert (await world.get("/assets/by-serial/NO-SUCH-SERIAL", "admin")).status_code == 404
    assert (await world.get("/assets/ast_nope", "admin")).status_code == 404
    assert (await world.get("/assets/by-qr/" + "A" * 65, "admin")).status_code == 422  # longer than any code

    # Only writers register: an engineer reads but does not write.
    r = await world.http.post(
        "/assets", json={"customer_id": cus, "serial": world.unique("SN"), "model": "m"}, headers=who("eng-li")
    )
    assert r.status_code == 403
    r = await world.http.patch(f"/assets/{aid}", json={"model": "X"}, headers=who("eng-li"))
    assert r.status_code == 403

    # A customer of another region is named like one that does not exist; a region outside the caller's is refused.
    south = await world.customer("south")
    for customer_id in (south, "cus_nobody"):
        r = await world.http.post(
            "/assets",
            json={"customer_id": customer_id, "serial": world.unique("SN"), "model": "m"},
            headers=who("agent-wang"),
        )
        assert problem_locs(r) == [["body", "customer_id"]]
    r = await world.http.post(
        "/assets",
        json={"customer_id": cus, "serial": world.unique("SN"), "model": "m", "region": "south"},
        headers=who("agent-wang"),
    )
    assert r.status_code == 403
    r = await world.http.post(
        "/assets",
        json={"customer_id": cus, "serial": world.unique("SN"), "model": "m", "region": "atlantis"},
        headers=who("admin"),
    )
    assert problem_locs(r) == [["body", "region"]]
    # Explicitly placed elsewhere by someone who may: then south staff see it and east staff do not.
    placed = await world.asset(cus, actor="admin", region="south")
    assert placed["region"] == "south"
    assert (await world.get(f"/assets/{placed['id']}", "agent-chen")).status_code == 200
    assert (await world.get(f"/assets/{placed['id']}", "agent-wang")).status_code == 404


async def test_asset_input_is_validated_field_by_field(world: World):
    cus = await world.customer()
    taken = await world.asset(cus)
    base = {"customer_id": cus, "model": "Carrier 30XA"}

    async def post(**body: Any) -> httpx.Response:
        return await world.http.post(
            "/assets", json={**base, "serial": world.unique("SN"), **body}, headers=who("agent-wang")
        )

    r = await world.http.post("/assets", json={**base, "serial": taken["serial"]}, headers=who("agent-wang"))
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    assert problem_locs(await post(lat=91, lon=121)) == [["body", "lat"]]
    assert problem_locs(await post(lat=31, lon=-181)) == [["body", "lon"]]
    assert problem_locs(await post(lat=31)) == [["body"]]  # lat without lon
    assert problem_locs(await post(installed_on="2026-05-01", warranty_end="2026-04-30")) == [["body"]]
    assert problem_locs(await post(warranty_covers="everything")) == [["body", "warranty_covers"]]
    assert problem_locs(await post(warranty_end="20256-01-01")) == [["body", "warranty_end"]]
    assert problem_locs(await post(warranty_end="2999-01-01")) == [["body", "warranty_end"]]
    assert problem_locs(await post(serial="SN 1/2")) == [["body", "serial"]]
    assert problem_locs(await post(serial="S" * 65)) == [["body", "serial"]]
    assert problem_locs(await post(model="")) == [["body", "model"]]
    assert problem_locs(await post(qr_code="mine")) == [["body", "qr_code"]]  # generated, never given
    r = await world.http.post(
        "/assets", json={**base, "serial": world.unique("SN"), "lat": "NaN", "lon": 1}, headers=who("agent-wang")
    )
    assert problem_locs(r) == [["body", "lat"]]

    aid = taken["id"]

    async def patch(**body: Any) -> httpx.Response:
        return await world.http.patch(f"/assets/{aid}", json=body, headers=who("agent-wang"))

    assert problem_locs(await patch(lat=30.5)) == [["body"]]  # the stored lon is null: not together
    assert problem_locs(await patch(serial=None)) == [["body", "serial"]]
    assert problem_locs(await patch(customer_id=cus)) == [["body", "customer_id"]]  # an asset keeps its customer
    other = await world.asset(cus)
    assert (await patch(serial=other["serial"])).status_code == 409
    r = await patch(serial=taken["serial"] + "B", lat=30.5, lon=120.25)
    assert r.status_code == 200 and (r.json()["serial"], r.json()["lat"]) == (taken["serial"] + "B", 30.5)
    assert (await world.get(f"/assets/by-serial/{taken['serial']}")).status_code == 404
    assert (await patch(region="south")).status_code == 403


async def test_repair_history_lists_only_that_assets_tickets_newest_first(world: World):
    cus = await world.customer()
    asset, other = await world.asset(cus), await world.asset(cus)
    start = datetime.now(UTC) - timedelta(days=10)
    mine = [
        await world.ticket(cus, asset["id"], at=start + timedelta(days=i), satisfaction=5 - i % 2) for i in range(5)
    ]
    await world.ticket(cus, other["id"], at=start)
    await world.ticket(cus, None, at=start)
    south = await world.ticket(cus, asset["id"], region="south", at=start + timedelta(days=9))

    seen, cursor = [], None
    while True:
        r = await world.get(f"/assets/{asset['id']}/tickets", limit=2, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) <= 2
        seen += r.json()["items"]
        if not (cursor := r.json()["next_cursor"]):
            break
    assert [t["id"] for t in seen] == list(reversed(mine))  # the south ticket is outside agent-wang's regions
    assert seen[0]["satisfaction"] == 5 - 4 % 2 and seen[0]["closed_at"] is not None
    everything = (await world.get(f"/assets/{asset['id']}/tickets", "admin")).json()["items"]
    assert [t["id"] for t in everything] == [south, *reversed(mine)]
    assert problem_locs(await world.get(f"/assets/{asset['id']}/tickets", cursor="not-a-cursor")) == [
        ["query", "cursor"]
    ]


# --- contracts and SLA tiers ---


async def test_contracts_cover_assets_and_show_on_them(world: World):
    cus = await world.customer()
    asset = await world.asset(cus, warranty_end=str(TODAY - timedelta(days=5)))
    gold = await world.tier(response_minutes=60, resolution_minutes=480)
    wide = await world.contract(cus, covers_labour=True)
    specific = await world.contract(cus, asset_id=asset["id"], covers_labour=True, covers_parts=True, sla_tier=gold)
    await world.contract(  # expired: never shown as valid
        cus,
        asset_id=asset["id"],
        covers_labour=True,
        covers_parts=True,
        valid_from=str(TODAY - timedelta(days=400)),
        valid_to=str(TODAY - timedelta(days=40)),
    )
    assert (wide["coverage"], specific["coverage"], specific["sla_tier"]) == ("labour", "labour_and_parts", gold)

    shown = (await world.get(f"/assets/{asset['id']}")).json()
    assert shown["warranty"]["in_warranty"] is False
    assert shown["contract"] == {
        "id": specific["id"],
        "number": specific["number"],
        "coverage": "labour_and_parts",
        "covers_labour": True,
        "covers_parts": True,
        "sla_tier": gold,
        "response_minutes": 60,
        "resolution_minutes": 480,
        "valid_to": specific["valid_to"],
    }
    # The list shows the same (computed for the page at once).
    assert (await world.get("/assets", customer_id=cus)).json()["items"] == [shown]
    # An asset with no contract of its own is covered by the customer-wide one.
    bare = await world.asset(cus)
    assert bare["contract"]["number"] == wide["number"]

    # Reads and lists.
    assert (await world.get(f"/contracts/{specific['id']}", "eng-li")).json() == specific
    numbers = lambda r: [c["number"] for c in r.json()["items"]]  # noqa: E731
    everything = await world.get("/contracts", customer_id=cus)
    assert len(everything.json()["items"]) == 3
    assert set(numbers(await world.get("/contracts", asset_id=bare["id"]))) == {wide["number"]}
    assert set(numbers(await world.get("/contracts", asset_id=asset["id"], valid_on=str(TODAY)))) == {
        wide["number"],
        specific["number"],
    }
    assert numbers(await world.get("/contracts", number=wide["number"])) == [wide["number"]]
    assert numbers(await world.get("/contracts", valid_on=str(TODAY - timedelta(days=100)), customer_id=cus)) != []
    assert problem_locs(await world.get("/contracts")) == [["query", "customer_id"]]

    # Extend, change coverage and drop the tier.
    later = str(TODAY + timedelta(days=700))
    r = await world.http.patch(
        f"/contracts/{wide['id']}",
        json={"valid_to": later, "covers_parts": True, "sla_tier": gold},
        headers=who("sup-zhou"),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["valid_to"], r.json()["coverage"], r.json()["sla_tier"]) == (later, "labour_and_parts", gold)
    r = await world.http.patch(f"/contracts/{wide['id']}", json={"sla_tier": None}, headers=who("sup-zhou"))
    assert r.json()["sla_tier"] is None and r.json()["valid_to"] == later
    # Now the customer-wide one covers as much and runs longer: it is the bare asset's and the first asset's.
    assert (await world.get(f"/assets/{asset['id']}")).json()["contract"]["number"] == wide["number"]


async def test_contract_negatives(world: World):
    cus, stranger = await world.customer(), await world.customer()
    theirs = await world.asset(stranger)
    mine = await world.asset(cus)
    tier = await world.tier()
    base = {"number": world.unique("SC"), "customer_id": cus, "valid_from": "2026-01-01", "valid_to": "2026-12-31"}

    async def post(actor: str = "sup-zhou", **body: Any) -> httpx.Response:
        return await world.http.post("/contracts", json={**base, **body}, headers=who(actor))

    r = await post(asset_id=theirs["id"])
    assert problem_locs(r) == [["body", "asset_id"]] and r.json()["detail"][0]["type"] == "asset_of_another_customer"
    assert problem_locs(await post(asset_id="ast_nothing")) == [["body", "asset_id"]]
    assert problem_locs(await post(valid_to="2025-12-31")) == [["body"]]
    assert "valid_to is before valid_from" in (await post(valid_to="2025-12-31")).text
    assert problem_locs(await post(sla_tier="no-such-tier")) == [["body", "sla_tier"]]
    assert problem_locs(await post(customer_id=await world.customer("south"))) == [["body", "customer_id"]]
    assert problem_locs(await post(number="SC 1")) == [["body", "number"]]
    assert (await post("gateway-qr")).status_code == 403
    assert (await post("eng-li")).status_code == 403
    assert (await post("agent-wang")).status_code == 403  # a contract is a money decision
    assert (await post(asset_id=mine["id"], sla_tier=tier)).status_code == 201
    r = await post()
    assert r.status_code == 409 and "taken" in r.json()["detail"]

    created = (await world.get("/contracts", customer_id=cus)).json()["items"][0]
    cid = created["id"]
    assert (await world.get(f"/contracts/{cid}", "agent-chen")).status_code == 404
    assert (await world.get(f"/contracts/{cid}", "gateway-qr")).status_code == 403
    assert (await world.get("/contracts", "agent-chen", customer_id=cus)).status_code == 404
    assert (await world.get("/contracts", "agent-chen", number=created["number"])).json()["items"] == []
    r = await world.http.patch(f"/contracts/{cid}", json={"valid_to": "2025-06-30"}, headers=who("sup-zhou"))
    assert problem_locs(r) == [["body", "valid_to"]]
    r = await world.http.patch(f"/contracts/{cid}", json={"sla_tier": "nope"}, headers=who("sup-zhou"))
    assert problem_locs(r) == [["body", "sla_tier"]]
    r = await world.http.patch(f"/contracts/{cid}", json={"asset_id": None}, headers=who("sup-zhou"))
    assert problem_locs(r) == [["body", "asset_id"]]
    r = await world.http.patch(f"/contracts/{cid}", json={"valid_to": "2027-06-30"}, headers=who("sup-lin"))
    assert r.status_code == 404  # a supervisor of south does not see an east customer's contract
    assert (await world.get(f"/contracts/{cid}")).json() == created  # nothing changed


async def test_what_moves_money_is_for_leads_and_finance_only(world: World):
    """A contract, a warranty's end and what it covers price a repair at zero: the front line
    (agents, sales) registers and edits assets but may not make work free; supervisors, managers,
    admins and finance may. Each refusal is a 403 naming the field, and leaves nothing behind."""
    cus = await world.customer()
    until = str(TODAY + timedelta(days=3650))
    contract = {"number": world.unique("SC"), "customer_id": cus, "covers_labour": True, "covers_parts": True}
    contract |= {"valid_from": str(TODAY - timedelta(days=30)), "valid_to": until}
    for front in ("agent-wang", "sales-gao"):
        r = await world.http.post("/contracts", json=contract, headers=who(front))
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (front, r.text)
    assert (await world.get("/contracts", customer_id=cus)).json()["items"] == []
    made = {}
    for lead in ("sup-zhou", "mgr-sun", "admin", "fin-qian"):
        r = await world.http.post("/contracts", json={**contract, "number": world.unique("SC")}, headers=who(lead))
        assert r.status_code == 201, (lead, r.text)
        made[lead] = r.json()
    cid = made["sup-zhou"]["id"]
    changes = {
        "covers_labour": False,
        "covers_parts": False,
        "valid_from": str(TODAY - timedelta(days=400)),
        "valid_to": str(TODAY + timedelta(days=4000)),
        "sla_tier": await world.tier(),
    }
    for field, value in changes.items():
        for front in ("agent-wang", "sales-gao"):
            r = await world.http.patch(f"/contracts/{cid}", json={field: value}, headers=who(front))
            assert r.status_code == 403 and field in r.json()["detail"], (field, front, r.text)
    assert (await world.get(f"/contracts/{cid}")).json() == made["sup-zhou"]  # nothing changed
    r = await world.http.patch(
        f"/contracts/{cid}", json={"valid_to": str(TODAY + timedelta(days=10))}, headers=who("fin-qian")
    )
    assert r.status_code == 200, r.text

    # Assets: the front line registers and edits them, but not their warranty.
    serial = world.unique("SN")
    base = {"customer_id": cus, "serial": serial, "model": "Carrier 30XA"}
    for field, value in (("warranty_end", "2199-12-31"), ("warranty_covers", "parts")):
        for front in ("agent-wang", "sales-gao"):
            r = await world.http.post("/assets", json={**base, field: value}, headers=who(front))
            assert r.status_code == 403 and field in r.json()["detail"] and r.json()["field"] == field, r.text
    assert (await world.get(f"/assets/by-serial/{serial}")).status_code == 404  # not registered
    plain = await world.asset(cus, actor="agent-wang")  # no warranty fields: the front line's to register
    assert plain["warranty"]["in_warranty"] is False and plain["warranty_end"] is None
    aid = plain["id"]
    for field, value in (("warranty_end", "2199-12-31"), ("warranty_covers", "parts")):
        for front in ("agent-wang", "sales-gao"):
            r = await world.http.patch(f"/assets/{aid}", json={field: value, "model": "X"}, headers=who(front))
            assert r.status_code == 403 and field in r.json()["detail"] and r.json()["field"] == field, r.text
    assert (await world.get(f"/assets/{aid}")).json() == plain  # nothing changed, not even the model
    # Unchanged warranty fields sent back with an edit are not a change.
    same = {"warranty_end": None, "warranty_covers": plain["warranty_covers"], "model": "Carrier 30XB"}
    r = await world.http.patch(f"/assets/{aid}", json=same, headers=who("agent-wang"))
    assert r.status_code == 200 and r.json()["model"] == "Carrier 30XB", r.text
    r = await world.http.patch(f"/assets/{aid}", json={"warranty_end": until}, headers=who("fin-qian"))
    assert r.status_code == 200 and r.json()["warranty"]["in_warranty"] is True, r.text
    r = await world.http.patch(f"/assets/{aid}", json={"model": "Y"}, headers=who("fin-qian"))
    assert r.status_code == 403  # finance sets what pays, not what the machine is
    covered = await world.asset(cus, actor="sup-zhou", warranty_end=until, warranty_covers="labour")
    assert covered["warranty"]["covers"] == "labour"
    async with world.db.session() as s:
        actions = (
            await s.exec(
                select(AuditLog.action, AuditLog.actor_id).where(AuditLog.target_id == aid).order_by(col(AuditLog.id))
            )
        ).all()
    assert [tuple(a) for a in actions] == [
        ("asset.create", "agent-wang"),
        ("asset.update", "agent-wang"),
        ("asset.update", "fin-qian"),
    ]


async def test_sla_tiers_are_put_by_admins_and_managers_with_bounded_targets(world: World):
    code = world.unique("tier").lower()
    body = {"name": "Platinum", "response_minutes": 30, "resolution_minutes": 240}
    put = lambda actor, b: world.http.put(f"/sla-tiers/{code}", json=b, headers=who(actor))  # noqa: E731
    assert (await put("agent-wang", body)).status_code == 403
    assert (await put("gateway-qr", body)).status_code == 403
    r = await put("mgr-sun", body)
    assert r.status_code == 201 and r.json() == {"code": code, **body}
    r = await put("admin", {**body, "resolution_minutes": 300})
    assert r.status_code == 200 and r.json()["resolution_minutes"] == 300
    assert {"code": code, **body, "resolution_minutes": 300} in (await world.get("/sla-tiers", "eng-li")).json()
    assert problem_locs(await put("admin", {**body, "response_minutes": 0})) == [["body", "response_minutes"]]
    assert problem_locs(await put("admin", {**body, "resolution_minutes": 10**9})) == [["body", "resolution_minutes"]]
    assert problem_locs(await put("admin", {"name": "None at all"})) == [["body"]]
    assert problem_locs(await put("admin", {**body, "response_minutes": 1.5})) == [["body", "response_minutes"]]
    r = await world.http.put("/sla-tiers/Not%20A%20Code", json=body, headers=who("admin"))
    assert problem_locs(r) == [["path", "code"]]


# --- exchange rates ---


async def test_exchange_rates_keep_the_newest_per_pair(world: World):
    # Far in the future: rows the demo data or other tests add never come between.
    t0 = datetime(2300, 1, 1, tzinfo=UTC) + timedelta(minutes=uuid.uuid4().int % 100_000)
    rows = [
        ("USD", "CNY", "7.1000", t0),
        ("USD", "CNY", "7.2345678912", t0 + timedelta(days=1)),
        ("EUR", "CNY", "7.80", t0),
    ]
    for base, quote, rate, at in rows:
        r = await world.http.post(
            "/exchange-rates",
            json={"base": base, "quote": quote, "rate": rate, "as_of": at.isoformat(), "source": "test"},
            headers=who("fin-qian"),
        )
        assert r.status_code == 201, r.text
        assert r.json()["rate"] == str(Decimal(rate).quantize(Decimal("0.0000000001")))

    def pairs(r: httpx.Response) -> dict[tuple[str, str], str]:
        return {(x["base"], x["quote"]): x["rate"] for x in r.json()}

    latest = pairs(await world.get("/exchange-rates/latest", at=(t0 + timedelta(days=2)).isoformat()))
    assert (latest[("USD", "CNY")], latest[("EUR", "CNY")]) == ("7.2345678912", "7.8000000000")
    assert (
        pairs(await world.get("/exchange-rates/latest", at=(t0 + timedelta(hours=1)).isoformat()))[("USD", "CNY")]
        == "7.1000000000"
    )
    now = pairs(await world.get("/exchange-rates/latest"))  # future rows are not yet in force
    assert now.get(("USD", "CNY")) != "7.2345678912"
    async with world.db.session() as s:
        snapshot = await store.rates.rate_snapshot(s, t0 + timedelta(days=2))
    assert {(r.base, r.quote): r.rate for r in snapshot.rates}[("USD", "CNY")] == Decimal("7.2345678912")
    assert snapshot.taken_at == t0 + timedelta(days=2)

    good = {"base": "USD", "quote": "CNY", "rate": "7.3", "as_of": (t0 + timedelta(days=5)).isoformat()}

    async def post(actor: str = "fin-qian", **body: Any) -> httpx.Response:
        return await world.http.post("/exchange-rates", json={**good, **body}, headers=who(actor))

    assert (await post("agent-wang")).status_code == 403
    assert (await post("gateway-erp")).status_code == 403
    for rate in (7.3, "0", "-1", "abc", "NaN", "1" * 25, "1.00000000001"):
        assert problem_locs(await post(rate=rate)) == [["body", "rate"]], rate
    assert problem_locs(await post(quote="USD")) == [["body"]]
    assert problem_locs(await post(base="XXX")) == [["body", "base"]]
    assert problem_locs(await post(base="usd")) == [["body", "base"]]
    assert problem_locs(await post(as_of="2300-01-01T00:00:00")) == [["body", "as_of"]]  # a moment needs its zone
    assert (await post("admin")).status_code == 201
    r = await post()
    assert r.status_code == 409 and r.json()["code"] == "conflict"
