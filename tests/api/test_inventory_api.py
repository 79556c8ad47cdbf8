"""/inventory over HTTP against the real app (httpx), real database: stock levels, the ledger,
alerts and receipts, each scoped by the caller's regions, with clear 4xx answers."""

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.routers import inventory as inventory_router
from models.db import Database
from models.inventory import Location, PartLine, ReserveInput
from models.inventory_tables import Part, Warehouse
from models.tables import Actor, ApiKey
from store import inventory
from tests.conftest import settings_for, task_queue

pytestmark = pytest.mark.asyncio

SHANGHAI = (31.2215, 121.5440)
SHENZHEN = (22.5333, 113.9304)


class Inv:
    """An httpx client on the app, plus this test's own actors, warehouses and parts."""

    def __init__(self, http: httpx.AsyncClient, db: Database, suffix: str) -> None:
        self.http, self.db, self.suffix = http, db, suffix
        self.east, self.south = f"WE-{suffix}", f"WS-{suffix}"
        self.fan, self.seal = f"FAN-{suffix}", f"SEAL-{suffix}"

    def who(self, name: str) -> dict[str, str]:
        return {"X-API-Key": f"key-{name}-{self.suffix}"}

    async def get(self, path: str, actor: str, **params) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.who(actor))

    async def receipt(self, actor: str, key: str | None, **body) -> httpx.Response:
        headers = self.who(actor) | ({"Idempotency-Key": key} if key else {})
        return await self.http.post("/inventory/receipts", json=body, headers=headers)


ACTORS = {  # name: (roles, regions)
    "clerk-east": (["warehouse"], ["east"]),
    "clerk-south": (["warehouse"], ["south"]),
    "agent-east": (["agent"], ["east"]),
    "admin": (["admin"], ["*"]),
}


@pytest.fixture
async def inv(db: Database, database_url: str, devserver: WorkflowEnvironment) -> AsyncIterator[Inv]:
    suffix = uuid.uuid4().hex[:8].upper()
    app = create_app(settings_for(database_url, devserver, task_queue()), client=devserver.client)
    if not any(getattr(r, "path", None) == "/inventory/stock" for r in app.routes):
        app.include_router(inventory_router.router)
    async with db.session() as s:
        for name, (roles, regions) in ACTORS.items():
            s.add(Actor(id=f"{name}-{suffix}", name=name, roles=roles, regions=regions))
            s.add(ApiKey.for_secret(f"{name}-{suffix}", f"key-{name}-{suffix}", created_by="test"))
        s.add(
            Warehouse(
                code=f"WE-{suffix}", name="East test", region="east", kind="regional", lat=SHANGHAI[0], lon=SHANGHAI[1]
            )
        )
        s.add(
            Warehouse(
                code=f"WS-{suffix}",
                name="South test",
                region="south",
                kind="regional",
                lat=SHENZHEN[0],
                lon=SHENZHEN[1],
            )
        )
        s.add(
            Part(
                sku=f"FAN-{suffix}", name="Compressor fan", unit_price=Decimal("185.5"), reorder_point=5, reorder_qty=10
            )
        )
        s.add(Part(sku=f"SEAL-{suffix}", name="Door seal", unit_price=Decimal("42"), reorder_point=0, reorder_qty=0))
        await s.commit()
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            yield Inv(h, db, suffix)


async def test_receipts_are_booked_once_per_key_and_validated(inv: Inv):
    body = {"warehouse": inv.east, "sku": inv.fan, "quantity": 12, "note": "PO-1"}
    r = await inv.receipt("clerk-east", "rcv-1-" + inv.suffix, **body)
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["movement"]["kind"], first["movement"]["quantity"], first["movement"]["actor_id"]) == (
        "receipt",
        12,
        f"clerk-east-{inv.suffix}",
    )
    assert {k: first["stock"][k] for k in ("on_hand", "reserved", "available", "low")} == {
        "on_hand": 12,
        "reserved": 0,
        "available": 12,
        "low": False,
    }

    again = await inv.receipt("clerk-east", "rcv-1-" + inv.suffix, **body)
    assert again.status_code == 200 and again.json()["movement"]["id"] == first["movement"]["id"]
    assert again.json()["stock"]["on_hand"] == 12  # booked once

    r = await inv.receipt("clerk-east", "rcv-1-" + inv.suffix, **{**body, "quantity": 13})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]

    bad = [
        ({**body, "quantity": 0}, ["body", "quantity"]),
        ({**body, "quantity": -3}, ["body", "quantity"]),
        ({**body, "sku": "NO-SUCH-PART"}, ["body", "sku"]),
        ({**body, "warehouse": "NO-SUCH-WH"}, ["body", "warehouse"]),
    ]
    for payload, loc in bad:
        r = await inv.receipt("clerk-east", f"bad-{uuid.uuid4()}", **payload)
        assert r.status_code == 422, (payload, r.text)
        assert r.json()["detail"][0]["loc"] == loc
    r = await inv.receipt("clerk-east", None, **body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["header", "idempotency-key"]

    # Outside the caller's regions the warehouse does not exist; an agent may not book stock at all.
    r = await inv.receipt("clerk-east", f"x-{uuid.uuid4()}", **{**body, "warehouse": inv.south})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await inv.receipt("agent-east", f"x-{uuid.uuid4()}", **body)
    assert r.status_code == 403
    r = await inv.http.get("/inventory/stock")
    assert r.status_code == 401


async def test_stock_levels_are_scoped_by_region_and_filterable(inv: Inv):
    for actor, wh, sku, qty in [
        ("clerk-east", inv.east, inv.fan, 3),
        ("clerk-east", inv.east, inv.seal, 9),
        ("clerk-south", inv.south, inv.fan, 7),
    ]:
        r = await inv.receipt(actor, f"seed-{uuid.uuid4()}", warehouse=wh, sku=sku, quantity=qty)
        assert r.status_code == 201, r.text

    r = await inv.get("/inventory/stock", "agent-east", sku=inv.fan)
    assert r.status_code == 200
    assert [(i["warehouse"], i["on_hand"], i["low"]) for i in r.json()["items"]] == [(inv.east, 3, True)]
    r = await inv.get("/inventory/stock", "clerk-south", sku=inv.fan)
    assert [(i["warehouse"], i["region"]) for i in r.json()["items"]] == [(inv.south, "south")]
    r = await inv.get("/inventory/stock", "admin", sku=inv.fan)
    assert sorted(i["warehouse"] for i in r.json()["items"]) == sorted([inv.east, inv.south])
    r = await inv.get("/inventory/stock", "admin", sku=inv.fan, region="south")
    assert [i["warehouse"] for i in r.json()["items"]] == [inv.south]

    r = await inv.get("/inventory/stock", "agent-east", warehouse=inv.east)
    assert [(i["sku"], i["available"]) for i in r.json()["items"]] == [(inv.fan, 3), (inv.seal, 9)]
    r = await inv.get("/inventory/stock", "agent-east", warehouse=inv.east, low_only="true")
    assert [i["sku"] for i in r.json()["items"]] == [inv.fan]  # 3 < reorder point 5
    r = await inv.get("/inventory/stock", "agent-east", warehouse=inv.east, limit=1)
    assert len(r.json()["items"]) == 1 and r.json()["next_offset"] == 1
    r = await inv.get("/inventory/stock", "agent-east", warehouse=inv.east, limit=1, offset=1)
    assert [i["sku"] for i in r.json()["items"]] == [inv.seal] and r.json()["next_offset"] is None

    for path in ("/inventory/stock", "/inventory/movements", "/inventory/alerts"):
        r = await inv.get(path, "agent-east", warehouse=inv.south)
        assert r.status_code == 404, path

    r = await inv.get("/inventory/warehouses", "agent-east")
    codes = [w["code"] for w in r.json()]
    assert inv.east in codes and inv.south not in codes
    r = await inv.get("/inventory/parts", "agent-east")
    fan = next(p for p in r.json() if p["sku"] == inv.fan)
    assert fan["unit_price"] == "185.5000"  # exact decimal, as a string


async def test_movements_show_a_tickets_ledger_newest_first_with_cursor_pages(inv: Inv):
    await inv.receipt("clerk-east", f"seed-{uuid.uuid4()}", warehouse=inv.east, sku=inv.fan, quantity=10)
    await inv.receipt("clerk-south", f"seed-{uuid.uuid4()}", warehouse=inv.south, sku=inv.fan, quantity=10)
    tid = f"T{uuid.uuid4().hex[:12].upper()}"
    for node, region, loc in [("reserve_1", "east", SHANGHAI), ("reserve_2", "south", SHENZHEN)]:
        r = await inventory.reserve(
            inv.db,
            ReserveInput(
                ticket_id=tid,
                node_id=node,
                region=region,
                location=Location(lat=loc[0], lon=loc[1]),
                lines=[PartLine(sku=inv.fan, quantity=2)],
            ),
        )
        assert r.status == "reserved"

    r = await inv.get("/inventory/movements", "admin", ticket_id=tid)
    assert [(m["node_id"], m["kind"], m["quantity"]) for m in r.json()["items"]] == [
        ("reserve_2", "reservation", 2),
        ("reserve_1", "reservation", 2),
    ]
    assert r.json()["items"][0]["idempotency_key"] == f"{tid}:reserve_2:0.0:reservation"
    r = await inv.get("/inventory/movements", "agent-east", ticket_id=tid)
    assert [m["warehouse"] for m in r.json()["items"]] == [inv.east]  # the south movement is invisible

    seen, cursor = [], None
    while True:
        params = {"sku": inv.fan, "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = (await inv.get("/inventory/movements", "admin", **params)).json()
        seen += [(m["kind"], m["warehouse"]) for m in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [
        ("reservation", inv.south),
        ("reservation", inv.east),
        ("receipt", inv.south),
        ("receipt", inv.east),
    ]
    r = await inv.get("/inventory/movements", "admin", sku=inv.fan, kind="receipt")
    assert [m["kind"] for m in r.json()["items"]] == ["receipt", "receipt"]
    assert (await inv.get("/inventory/movements", "admin", cursor="not-a-cursor")).status_code == 422
    assert (await inv.get("/inventory/movements", "admin", kind="theft")).status_code == 422


async def test_low_stock_alerts_open_and_close_and_stay_in_their_region(inv: Inv):
    await inv.receipt("clerk-east", f"seed-{uuid.uuid4()}", warehouse=inv.east, sku=inv.fan, quantity=6)
    await inv.receipt("clerk-south", f"seed-{uuid.uuid4()}", warehouse=inv.south, sku=inv.fan, quantity=6)
    for region in ("east", "south"):
        r = await inventory.reserve(
            inv.db,
            ReserveInput(
                ticket_id=f"T{uuid.uuid4().hex[:12].upper()}",
                node_id="reserve_parts",
                region=region,
                lines=[PartLine(sku=inv.fan, quantity=3)],
            ),
        )
        assert r.allocations[0].warehouse == (inv.east if region == "east" else inv.south)

    r = await inv.get("/inventory/alerts", "agent-east", sku=inv.fan)
    [alert] = r.json()["items"]
    assert (alert["warehouse"], alert["status"], alert["available_at_open"], alert["suggested_qty"]) == (
        inv.east,
        "open",
        3,
        12,
    )
    assert alert["notified_at"] is None and alert["part_name"] == "Compressor fan"
    r = await inv.get("/inventory/alerts", "admin", sku=inv.fan)
    assert sorted(a["warehouse"] for a in r.json()["items"]) == sorted([inv.east, inv.south])

    await inv.receipt("clerk-east", f"po-{uuid.uuid4()}", warehouse=inv.east, sku=inv.fan, quantity=12)
    assert (await inv.get("/inventory/alerts", "agent-east", sku=inv.fan)).json()["items"] == []
    r = await inv.get("/inventory/alerts", "agent-east", sku=inv.fan, status="closed")
    [closed] = r.json()["items"]
    assert (closed["id"], closed["available_at_close"]) == (alert["id"], 15)
    r = await inv.get("/inventory/alerts", "admin", sku=inv.fan, status="all")
    assert sorted(a["status"] for a in r.json()["items"]) == ["closed", "open"]
    assert (await inv.get("/inventory/alerts", "admin", status="maybe")).status_code == 422
