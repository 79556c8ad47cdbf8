"""Intake knows the customer and the asset: POST /tickets resolves ``customer`` (an id or any
contact identity, across merges) and ``asset`` (id, serial or QR code), takes the region from
them, fills the template's asset fields, and a valid service contract's SLA tier replaces the
template's targets. Tickets filter by customer (merged records included) and by asset."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from models.customer_tables import Asset, Customer, CustomerIdentity, ServiceContract, SlaTier
from models.db import Database

pytestmark = pytest.mark.asyncio


async def _customers(db: Database) -> dict[str, str]:
    """Two customers in east (one merged into the other), one in south; an asset each; a gold contract."""
    s = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    ids = {k: f"cus_{k}_{s}" for k in ("main", "merged", "south")}
    today = date.today()
    async with db.session() as session:
        for key, region in (("main", "east"), ("merged", "east"), ("south", "south")):
            session.add(
                Customer(
                    id=ids[key],
                    name=f"Customer {key}",
                    region=region,
                    referral_code=f"R{key[:3]}{s}",
                    merged_into=ids["main"] if key == "merged" else None,
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.flush()
        session.add(
            CustomerIdentity(
                customer_id=ids["main"], kind="phone", value=f"+86139{int(s, 16) % 10**8:08d}", created_at=now
            )
        )
        session.add(CustomerIdentity(customer_id=ids["merged"], kind="wechat_openid", value=f"o-{s}", created_at=now))
        session.add(CustomerIdentity(customer_id=ids["south"], kind="email", value=f"{s}@example.com", created_at=now))
        session.add(SlaTier(code=f"gold{s}", name="Gold", response_minutes=30, resolution_minutes=240))
        for key, region in (("main", "east"), ("south", "south")):
            session.add(
                Asset(
                    id=f"ast_{key}_{s}",
                    customer_id=ids[key],
                    region=region,
                    serial=f"{'CMP' if key == 'main' else 'CMS'}-{int(s, 16) % 10**8:08d}",
                    model="Compressor",
                    qr_code=f"qr-{key}-{s}",
                    site_address="1 Test Road",
                    lat=31.2,
                    lon=121.5,
                    warranty_end=today + timedelta(days=365),
                    created_at=now,
                )
            )
        await session.flush()
        session.add(
            ServiceContract(
                id=f"ctr_{s}",
                number=f"SC-{s}",
                customer_id=ids["main"],
                asset_id=f"ast_main_{s}",
                covers_labour=True,
                sla_tier=f"gold{s}",
                valid_from=today - timedelta(days=30),
                valid_to=today + timedelta(days=30),
                created_at=now,
            )
        )
        await session.commit()
    return {
        **ids,
        "phone": f"+86 139 {int(s, 16) % 10**8:08d}",
        "openid": f"o-{s}",
        "email": f"{s}@example.com",
        "asset": f"ast_main_{s}",
        "asset_south": f"ast_south_{s}",
        "qr": f"qr-main-{s}",
        "serial": f"CMP-{int(s, 16) % 10**8:08d}",
        "contract": f"SC-{s}",
        "tier": f"gold{s}",
    }


async def test_a_qr_scan_names_the_asset_and_intake_fills_the_rest(stack, db):
    c = await _customers(db)
    body = {
        "ticket_type": "equipment_repair",
        "channel": "qr",
        "title": "Compressor noisy",
        "region": None,
        "asset": {"qr_code": c["qr"]},
        "fields": {"fault": "noise"},
    }
    r = await stack.create(actor="gateway-qr", **body)
    assert r.status_code == 201, r.text
    t = r.json()
    # The region, the customer and the form's asset fields come from the asset.
    assert (t["region"], t["customer_id"], t["asset_id"]) == ("east", c["main"], c["asset"])
    assert t["fields"]["device_id"] == c["serial"]
    assert t["fields"]["site"] == {"lat": 31.2, "lon": 121.5, "address": "1 Test Road"}
    assert t["reporter"] == "Customer main"
    # The gold contract's SLA replaces the template's targets (equipment_repair: 2 h / 24 h).
    assert t["contract_sla"] == {
        "contract": c["contract"],
        "tier": c["tier"],
        "response": "PT30M",
        "resolution": "PT4H",
    }
    t = await stack.until(t["ticket_id"], lambda t: t["sla"]["clocks"])
    assert t["sla"]["clocks"]["response"]["target"] == "PT30M"
    assert t["sla"]["clocks"]["resolution"]["target"] == "PT4H"


async def test_customer_by_any_identity_across_merges(stack, db):
    c = await _customers(db)
    # The merged record's WeChat id resolves to the survivor; the phone in another notation too.
    r = await stack.create(customer={"wechat_openid": c["openid"], "phone": c["phone"]})
    assert r.status_code == 201, r.text
    assert r.json()["customer_id"] == c["main"]
    # A ticket for the merged record by id lands on the survivor as well.
    r = await stack.create(customer={"id": c["merged"]}, asset={"id": c["asset"]})
    assert r.status_code == 201, r.text
    assert (r.json()["customer_id"], r.json()["asset_id"]) == (c["main"], c["asset"])
    # No contract on a ticket without the contracted asset... the customer-wide check finds none.
    r = await stack.create(customer={"phone": c["phone"]})
    assert r.json()["contract_sla"] is None

    listed = (
        await stack.http.get("/tickets", params={"customer_id": c["merged"]}, headers=stack.as_actor("agent-wang"))
    ).json()
    assert len(listed["items"]) == 3 and {i["customer_id"] for i in listed["items"]} == {c["main"]}
    by_asset = (
        await stack.http.get("/tickets", params={"asset_id": c["asset"]}, headers=stack.as_actor("agent-wang"))
    ).json()
    assert len(by_asset["items"]) == 1

    # The ticket shows its customer's 360: the other tickets (not itself), the asset and its contract.
    shown = (await stack.get(listed["items"][0]["id"])).json()["customer_360"]
    assert shown["customer"]["id"] == c["main"]
    assert {t["id"] for t in shown["tickets"]} == {i["id"] for i in listed["items"][1:]}
    assert [a["id"] for a in shown["assets"]] == [c["asset"]]
    # Another region's staff see the ticket's region only: no ticket, so no 360 either.
    assert (await stack.get(listed["items"][0]["id"], "agent-chen")).status_code == 404


@pytest.mark.parametrize(
    ("customer", "asset", "loc", "type_"),
    [
        ({"id": "cus_nobody"}, None, ["body", "customer", "id"], "unknown_customer"),
        ({"phone": "not a phone"}, None, ["body", "customer", "phone"], "bad_identity"),
        ({"email": "SOUTH"}, None, ["body", "customer", "email"], "unknown_customer"),  # another region's customer
        (None, {"qr_code": "no-such-code"}, ["body", "asset"], "unknown_asset"),
        (None, {"id": "SOUTH_ASSET"}, ["body", "asset"], "unknown_asset"),  # another region's asset
        ({"phone": "PHONE"}, {"id": "SOUTH_ASSET_AS_ADMIN"}, ["body", "asset"], "asset_of_another_customer"),
        ({"phone": "PHONE", "email": "SOUTH_AS_ADMIN"}, None, ["body", "customer"], "ambiguous_customer"),
    ],
)
async def test_a_customer_or_asset_intake_cannot_use_is_a_422(stack, db, customer, asset, loc, type_):
    c = await _customers(db)
    actor = "agent-wang"
    fill = {
        "PHONE": c["phone"],
        "SOUTH": c["email"],
        "SOUTH_AS_ADMIN": c["email"],
        "SOUTH_ASSET": c["asset_south"],
        "SOUTH_ASSET_AS_ADMIN": c["asset_south"],
    }
    if customer and "SOUTH_AS_ADMIN" in customer.values() or asset and "SOUTH_ASSET_AS_ADMIN" in asset.values():
        actor = "admin"  # sees every region: the refusal is about the pairing, not the scope
    customer = {k: fill.get(v, v) for k, v in customer.items()} if customer else None
    asset = {k: fill.get(v, v) for k, v in asset.items()} if asset else None
    before = (await stack.http.get("/tickets", params={"limit": 200}, headers=stack.as_actor("admin"))).json()["items"]
    r = await stack.create(actor=actor, customer=customer, asset=asset)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc and r.json()["detail"][0]["type"] == type_
    after = (await stack.http.get("/tickets", params={"limit": 200}, headers=stack.as_actor("admin"))).json()["items"]
    assert [t["id"] for t in after] == [t["id"] for t in before]  # nothing started


async def test_lookups_are_checked_before_anything_starts(stack):
    r = await stack.create(region=None)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "region"]
    r = await stack.create(asset={"id": "a", "serial": "b"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "asset"]
    r = await stack.create(customer={})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "customer"]
    r = await stack.create(customer={"phone": "1" * 41})
    assert r.status_code == 422


async def test_an_idempotency_key_is_the_callers_own(stack):
    """Another caller cannot squat a key (or an external_ref) a channel or business source will use
    later: the key is scoped to whoever sends it (found by the attacker review of issue #11)."""
    key = f"integration:iot:{uuid.uuid4().hex}:1"
    squat = await stack.create(actor="agent-chen", region="south", idempotency_key=key)
    assert squat.status_code == 201
    real = await stack.create(actor="gateway-qr", channel="qr", idempotency_key=key, title="Alarm T42")
    assert real.status_code == 201, real.text
    assert real.json()["ticket_id"] != squat.json()["ticket_id"] and real.json()["title"] == "Alarm T42"
    again = await stack.create(actor="gateway-qr", channel="qr", idempotency_key=key, title="Alarm T42")
    assert again.status_code == 200 and again.json()["ticket_id"] == real.json()["ticket_id"]
    ref = f"ERP-{uuid.uuid4().hex[:8]}"
    first = await stack.create(actor="agent-chen", region="south", channel="erp", external_ref=ref)
    theirs = await stack.create(actor="gateway-erp", channel="erp", external_ref=ref)
    assert theirs.status_code == 201 and theirs.json()["ticket_id"] != first.json()["ticket_id"]


async def test_an_asset_names_its_owner_only_to_callers_who_may_see_them(stack, db):
    """A south agent raising a ticket on a machine placed in south whose owner is an east customer
    learns nothing about that customer; channel accounts name machines by QR code only."""
    c = await _customers(db)
    now = datetime.now(UTC)
    serial = f"CMX-{uuid.uuid4().int % 10**8:08d}"
    async with db.session() as session:
        session.add(
            Asset(
                id=f"ast_x_{serial[-8:]}",
                customer_id=c["main"],
                region="south",
                serial=serial,
                model="Chiller",
                qr_code=f"qr-x-{serial}",
                created_at=now,
            )
        )
        await session.commit()
    r = await stack.create(actor="agent-chen", region="south", asset={"serial": serial})
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["asset_id"] == f"ast_x_{serial[-8:]}" and t["customer_id"] is None and t["reporter"] is None
    # A channel account names a machine by the code on its sticker, never by a serial or id.
    r = await stack.create(actor="gateway-qr", channel="qr", asset={"serial": serial})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "asset"]
    r = await stack.create(actor="gateway-qr", channel="qr", asset={"qr_code": f"qr-x-{serial}"})
    assert r.status_code == 201, r.text
