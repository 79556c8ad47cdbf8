"""Business-system events over HTTP (issue #11, part 6): sources and their secrets, mapping rules
checked on save, each preset end to end, the storm of identical alarms counted on one ticket,
idempotent event ids, repeats after close, and what an unsigned or stale event gets (401, nothing
written)."""

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

import store.integrations
from api.services.integrations import load_presets
from domain.inbound_auth import sign
from models.customer_tables import Asset, Customer, CustomerIdentity, CustomerOrder
from models.db import Database
from models.integration_tables import IntegrationEvent, IntegrationOccurrence

pytestmark = pytest.mark.asyncio

ADMIN = "admin"
MAPPINGS = Path(__file__).resolve().parents[2] / "templates" / "mappings"


# --- helpers ---


def preset_rules(name: str) -> dict:
    doc = yaml.safe_load((MAPPINGS / f"{name}.yaml").read_text())
    doc.pop("source")
    return doc


async def register(stack, prefix: str, channel: str = "erp") -> tuple[str, str]:
    code = f"{prefix}-{uuid.uuid4().hex[:8]}"
    r = await stack.http.put(
        f"/integrations/{code}",
        json={"name": f"{prefix} test", "channel": channel, "actor_id": "gateway-erp"},
        headers=stack.as_actor(ADMIN),
    )
    assert r.status_code == 201, r.text
    return code, r.json()["secret"]


async def source_with(stack, prefix: str, rules: dict, channel: str = "erp") -> tuple[str, str]:
    code, secret = await register(stack, prefix, channel)
    r = await stack.http.put(f"/integrations/{code}/mapping", json=rules, headers=stack.as_actor("tmpl-admin"))
    assert r.status_code == 201, r.text
    return code, secret


def event(type_: str, data: dict, event_id: str | None = None) -> dict:
    return {
        "event_id": event_id or f"ev-{uuid.uuid4().hex}",
        "type": type_,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": data,
    }


async def post(stack, code: str, secret: str, body: dict | bytes, ts: int | None = None, signature: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = int(time.time()) if ts is None else ts
    headers = {
        "Content-Type": "application/json",
        "X-Ticketflow-Timestamp": str(ts),
        "X-Ticketflow-Signature": signature or sign(secret, ts, raw),
    }
    return await stack.http.post(f"/integrations/{code}/events", content=raw, headers=headers)


async def people(db: Database, asset: bool = True) -> dict[str, str]:
    """A customer in east with a phone, and (``asset``) a compressor of theirs."""
    s = uuid.uuid4().hex[:8]
    number = int(s, 16) % 10**8
    now = datetime.now(UTC)
    out = {"customer": f"cus_int_{s}", "phone": f"+86138{number:08d}", "serial": f"CMP-{number:08d}"}
    async with db.session() as session:
        session.add(
            Customer(
                id=out["customer"],
                name=f"Customer {s}",
                region="east",
                referral_code=f"RI{s}",
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
        session.add(CustomerIdentity(customer_id=out["customer"], kind="phone", value=out["phone"], created_at=now))
        if asset:
            out["asset"] = f"ast_int_{s}"
            session.add(
                Asset(
                    id=out["asset"],
                    customer_id=out["customer"],
                    region="east",
                    serial=out["serial"],
                    model="Compressor",
                    qr_code=f"qr-int-{s}",
                    site_address="8 Factory Road",
                    lat=31.21,
                    lon=121.45,
                    created_at=now,
                )
            )
        await session.commit()
    return out


async def rows(db: Database, model, *where):
    async with db.session() as session:
        return list((await session.exec(sa.select(model).where(*where))).scalars().all())


async def status_of(db: Database, ticket_id: str, want: str, timeout: float = 20.0) -> str | None:
    """The ticket's status in the read model, once it is ``want`` (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.session() as session:
            status = await store.integrations.ticket_status(session, ticket_id)
        if status == want or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


def alarm(serial: str, code: str = "T42", kind: str = "temperature", **extra) -> dict:
    return event("device.alarm", {"serial": serial, "code": code, "kind": kind, "message": "too hot", **extra})


# --- sources ---


async def test_a_source_is_registered_by_an_admin_its_secret_shown_once_and_rotated(stack):
    code = f"src-{uuid.uuid4().hex[:8]}"
    body = {"name": "ERP", "channel": "erp", "actor_id": "gateway-erp"}
    for actor in ("tmpl-admin", "agent-wang", "mgr-sun"):
        assert (
            await stack.http.put(f"/integrations/{code}", json=body, headers=stack.as_actor(actor))
        ).status_code == 403
    assert (await stack.http.put(f"/integrations/{code}", json=body)).status_code == 401
    for bad, field in (({"actor_id": "agent-wang"}, "actor_id"), ({"actor_id": "nobody"}, "actor_id")):
        r = await stack.http.put(f"/integrations/{code}", json=body | bad, headers=stack.as_actor(ADMIN))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], r.text
    r = await stack.http.put("/integrations/Bad Code!", json=body, headers=stack.as_actor(ADMIN))
    assert r.status_code in (404, 422)

    r = await stack.http.put(f"/integrations/{code}", json=body, headers=stack.as_actor(ADMIN))
    assert r.status_code == 201 and len(r.json()["secret"]) >= 32
    first = r.json()["secret"]
    await stack.http.put(
        f"/integrations/{code}/mapping", json=preset_rules("iot"), headers=stack.as_actor("tmpl-admin")
    )
    r = await stack.http.put(f"/integrations/{code}", json=body | {"name": "ERP 2"}, headers=stack.as_actor(ADMIN))
    assert r.status_code == 200 and r.json()["secret"] is None and r.json()["name"] == "ERP 2"
    ping = event("device.ping", {})
    assert (await post(stack, code, first, ping)).status_code == 202  # no rule for it: ignored

    rotated = await stack.http.put(
        f"/integrations/{code}", json=body | {"rotate_secret": True}, headers=stack.as_actor(ADMIN)
    )
    second = rotated.json()["secret"]
    assert rotated.status_code == 200 and second not in (None, first)
    assert (await post(stack, code, first, event("device.ping", {}))).status_code == 202  # the grace period
    assert (await post(stack, code, second, event("device.ping", {}))).status_code == 202
    rotated = await stack.http.put(
        f"/integrations/{code}",
        json=body | {"rotate_secret": True, "previous_valid_hours": 0},
        headers=stack.as_actor(ADMIN),
    )
    third = rotated.json()["secret"]
    assert (await post(stack, code, second, event("device.ping", {}))).status_code == 401  # no grace: refused
    assert (await post(stack, code, third, event("device.ping", {}))).status_code == 202

    r = await stack.http.put(f"/integrations/{code}", json=body | {"active": False}, headers=stack.as_actor(ADMIN))
    assert r.status_code == 200
    assert (await post(stack, code, third, event("device.ping", {}))).status_code == 401  # inactive
    audit = (await stack.http.get("/audit", params={"target_id": code}, headers=stack.as_actor(ADMIN))).json()
    assert all(third not in json.dumps(e) and first not in json.dumps(e) for e in audit["items"])  # never a secret


async def test_unsigned_stale_or_unknown_events_are_refused_and_leave_nothing(stack, db):
    code, secret = await source_with(stack, "iot", preset_rules("iot"))
    body = alarm("CMP-00000001")
    now = int(time.time())
    raw = json.dumps(body).encode()
    cases = [
        await post(stack, code, "not-the-secret", body),
        await post(stack, code, secret, body, ts=now - 3600),  # stale
        await post(stack, code, secret, body, ts=now + 3600),  # from the future
        await post(stack, code, secret, body, signature="v1=" + "0" * 64),
        await post(stack, code, secret, body, signature="garbage"),
        await post(stack, f"nope-{uuid.uuid4().hex[:6]}", secret, body),  # unknown source
        await post(stack, code, secret, raw + b" ", signature=sign(secret, now, raw)),  # body changed after signing
        await stack.http.post(f"/integrations/{code}/events", json=body),  # no headers at all
    ]
    assert [r.status_code for r in cases] == [401] * len(cases), [r.text for r in cases]
    assert await rows(db, IntegrationEvent, IntegrationEvent.source == code) == []
    assert await rows(db, IntegrationOccurrence, IntegrationOccurrence.source == code) == []


async def test_a_timestamp_of_non_ascii_digits_is_a_401_not_a_500(stack, db):
    """``²`` passes ``str.isdigit`` but ``int`` cannot read it: an unauthenticated 500 before."""
    code, secret = await source_with(stack, "iot", preset_rules("iot"))
    raw = json.dumps(alarm("CMP-00000001")).encode()
    signature = sign(secret, int(time.time()), raw).encode()
    for where in (code, f"nope-{uuid.uuid4().hex[:6]}"):
        for ts in (b"\xb2", b"1\xb2", b"\xb9\xb2\xb3"):  # ², 1², ¹²³ as the header's latin-1 bytes
            headers = [(b"Content-Type", b"application/json"), (b"X-Ticketflow-Signature", signature)]
            r = await stack.http.post(
                f"/integrations/{where}/events", content=raw, headers=[*headers, (b"X-Ticketflow-Timestamp", ts)]
            )
            assert r.status_code == 401, (where, ts, r.status_code, r.text)
    assert await rows(db, IntegrationEvent, IntegrationEvent.source == code) == []
    assert await rows(db, IntegrationOccurrence, IntegrationOccurrence.source == code) == []


async def test_malformed_events_are_4xx_naming_the_field(stack):
    code, secret = await source_with(stack, "iot", preset_rules("iot"))
    good = alarm("CMP-00000001")
    cases = {
        "not json": (b"{not json", ["body"]),
        "NaN": (
            b'{"event_id": "e1", "type": "t", "occurred_at": "2026-12-10T08:00:00Z", "data": {"x": NaN}}',
            ["body"],
        ),
        "no id": ({k: v for k, v in good.items() if k != "event_id"}, ["body", "event_id"]),
        "bad id": (good | {"event_id": "has spaces"}, ["body", "event_id"]),
        "naive time": (good | {"occurred_at": "2026-12-10T08:00:00"}, ["body", "occurred_at"]),
        "extra": (good | {"actor": "admin"}, ["body", "actor"]),
        "huge int": (good | {"data": {"n": 10**30}}, ["body", "data", "n"]),
        "data not an object": (good | {"data": [1]}, ["body", "data"]),
    }
    for name, (body, loc) in cases.items():
        r = await post(stack, code, secret, body)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["detail"][0]["loc"] == loc, (name, r.text)
    big = good | {"data": {"blob": "x" * 70_000}}
    assert (await post(stack, code, secret, big)).status_code == 413


# --- mappings ---


async def test_mappings_are_checked_on_save_and_published_as_immutable_versions(stack):
    code, _ = await register(stack, "erp")
    url = f"/integrations/{code}/mapping"
    designer = stack.as_actor("tmpl-admin")
    rules = preset_rules("erp")
    assert (await stack.http.put(url, json=rules, headers=stack.as_actor("agent-wang"))).status_code == 403
    assert (await stack.http.put(url, json=rules, headers=stack.as_actor("gateway-erp"))).status_code == 403
    assert (await stack.http.put(f"/integrations/nope-{code}/mapping", json=rules, headers=designer)).status_code == 404
    assert (await stack.http.get(url, headers=designer)).status_code == 404  # nothing published yet

    broken = json.loads(json.dumps(rules))
    rule = broken["rules"][0]
    rule["condition"] = "event.data.installation =="
    rule["fields"]["colour"] = "$.data.colour"
    rule["fields"]["product"] = "$.data.[product"
    second = json.loads(json.dumps(rule)) | {"name": "other", "template": "no_such_template", "condition": "amount > 1"}
    broken["rules"].append(second)
    r = await stack.http.put(url, json=broken, headers=designer)
    assert r.status_code == 422
    found = {(tuple(p["loc"]), p["type"]) for p in r.json()["detail"]}
    assert found == {
        (("body", "rules", 0, "condition"), "condition_invalid"),
        (("body", "rules", 0, "fields", "colour"), "unknown_field"),
        (("body", "rules", 0, "fields", "product"), "path_invalid"),
        (("body", "rules", 1, "fields", "product"), "path_invalid"),
        (("body", "rules", 1, "condition"), "condition_invalid"),
        (("body", "rules", 1, "template"), "unknown_template"),
    }
    shape = await stack.http.put(url, json={"rules": [{"name": "x"}]}, headers=designer)
    assert shape.status_code == 422 and ["body", "rules", 0, "event_type"] in [p["loc"] for p in shape.json()["detail"]]

    r = await stack.http.put(url, json=rules, headers=designer)
    assert r.status_code == 201 and r.json()["version"] == 1
    assert (await stack.http.put(url, json=rules, headers=designer)).status_code == 200  # unchanged: no version
    rules["description"] = "edited"
    assert (await stack.http.put(url, json=rules, headers=designer)).json()["version"] == 2
    staff = stack.as_actor("agent-wang")
    assert (await stack.http.get(url, headers=staff)).json()["version"] == 2
    v1 = (await stack.http.get(url, params={"version": 1}, headers=staff)).json()
    assert v1["version"] == 1 and v1["spec"]["description"] == preset_rules("erp")["description"]
    assert (await stack.http.get(url, params={"version": 9}, headers=staff)).status_code == 404
    assert (await stack.http.get(url, headers=stack.as_actor("gateway-erp"))).status_code == 403


async def test_load_presets_registers_the_sources_once_and_publishes_unchanged_rules_once(db):
    first = await load_presets(db, secrets={"erp": "e" * 40, "ecommerce": "c" * 40, "iot": "i" * 40})
    again = await load_presets(db)
    assert sorted(code for code, *_ in first) == ["ecommerce", "erp", "iot"]
    assert all(not new and secret is None for _, _, new, secret in again)
    assert [v for _, v, _, _ in again] == [v for _, v, _, _ in first]


# --- the presets, end to end ---


async def test_erp_order_paid_raises_an_installation_and_records_the_order(stack, db):
    who = await people(db, asset=False)
    code, secret = await source_with(stack, "erp", preset_rules("erp"))
    order_no = f"SO-{uuid.uuid4().hex[:8]}"
    data = {
        "order_no": order_no,
        "product": "Air conditioner X2",
        "installation": True,
        "customer": {"phone": who["phone"]},
        "shipping": {"lat": 31.23, "lon": 121.47, "address": "88 Century Ave"},
        "amount": 4999.5,
        "currency": "cny",
        "placed_at": "2026-12-09T10:00:00+08:00",
    }
    r = await post(stack, code, secret, event("order.paid", data))
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["outcome"], created["rule"], created["count"]) == ("created", "order_paid_installation", 1)
    t = (await stack.get(created["ticket_id"], ADMIN)).json()
    assert (t["ticket_type"], t["region"], t["channel"], t["customer_id"]) == (
        "installation",
        "east",
        "erp",
        who["customer"],
    )
    assert t["title"] == f"Install Air conditioner X2 (order {order_no})" and t["external_ref"] == order_no
    assert t["fields"]["order_no"] == order_no and t["fields"]["product"] == "Air conditioner X2"
    assert t["fields"]["address"] == {"lat": 31.23, "lon": 121.47, "address": "88 Century Ave"}
    (order,) = await rows(db, CustomerOrder, CustomerOrder.source == code)
    assert (order.external_ref, order.customer_id, order.status, order.amount, order.currency) == (
        order_no,
        who["customer"],
        "paid",
        Decimal("4999.5"),
        "CNY",
    )
    assert order.placed_at == datetime(2026, 12, 9, 2, tzinfo=UTC)

    # The ERP sends the same payment again under a new id: the same installation, counted.
    again = await post(stack, code, secret, event("order.paid", data))
    assert again.status_code == 200 and again.json() | {"event_id": None} == created | {
        "event_id": None,
        "outcome": "added",
        "count": 2,
    }
    # A paid order without installation meets no rule's condition: ignored, and recorded.
    plain = event("order.paid", data | {"order_no": f"SO-{uuid.uuid4().hex[:8]}", "installation": False})
    r = await post(stack, code, secret, plain)
    assert r.status_code == 202 and r.json()["outcome"] == "ignored" and r.json()["ticket_id"] is None
    (ignored,) = await rows(db, IntegrationEvent, IntegrationEvent.event_id == plain["event_id"])
    assert ignored.outcome == "ignored"
    # An unknown buyer: no customer and so no region for the ticket — a 422 naming the event's field.
    stranger = event("order.paid", data | {"customer": {"phone": "+8613000000000"}})
    r = await post(stack, code, secret, stranger)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "data", "customer", "phone"], r.text


async def test_an_order_recorded_for_another_customer_is_not_taken_over_by_the_event(stack, db):
    """Staff recorded an order under a code before that code was a registered source (the only
    way left: a registered source's code is refused on POST /customers/{id}/orders). The source's
    event for the same order but another customer raises its ticket for its own customer and leaves
    that order row alone (noted on the event); an order of a merged record of the event's customer
    is the customer's own, and is updated."""
    victim, decoy = await people(db, asset=False), await people(db, asset=False)
    code = f"erp-{uuid.uuid4().hex[:8]}"
    decoy_no, merged_no = f"SO-{uuid.uuid4().hex[:8]}", f"SO-{uuid.uuid4().hex[:8]}"
    merged = f"cus_int_m{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with db.session() as session:
        session.add(
            Customer(
                id=merged,
                name="Merged record",
                region="east",
                referral_code=f"RM{uuid.uuid4().hex[:8]}",
                merged_into=victim["customer"],
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()
    pre = {"placed_at": "2026-12-01T00:00:00+00:00", "status": "draft", "summary": "pre", "amount": "1.00"}
    r = await stack.http.post(
        f"/customers/{decoy['customer']}/orders",
        json={"source": code, "external_ref": decoy_no, **pre, "currency": "CNY"},
        headers=stack.as_actor("agent-wang"),
    )
    assert r.status_code == 201, r.text  # not a registered source yet
    async with db.session() as session:  # reported on a record since merged into the victim's
        session.add(
            CustomerOrder(
                customer_id=merged,
                source=code,
                external_ref=merged_no,
                placed_at=datetime(2026, 12, 1, tzinfo=UTC),
                status="draft",
                amount=Decimal("1.00"),
                currency="CNY",
                summary="pre",
            )
        )
        await session.commit()
    r = await stack.http.put(
        f"/integrations/{code}",
        json={"name": "ERP", "channel": "erp", "actor_id": "gateway-erp"},
        headers=stack.as_actor(ADMIN),
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    r = await stack.http.put(
        f"/integrations/{code}/mapping", json=preset_rules("erp"), headers=stack.as_actor("tmpl-admin")
    )
    assert r.status_code == 201, r.text

    def paid(number: str) -> dict[str, object]:
        data = {"order_no": number, "product": "AC X2", "installation": True, "customer": {"phone": victim["phone"]}}
        data |= {"shipping": {"lat": 31.23, "lon": 121.47, "address": "88 Century Ave"}, "amount": "4999.50"}
        return event("order.paid", data | {"currency": "CNY", "placed_at": "2026-12-09T10:00:00+08:00"})

    squatted = paid(decoy_no)
    r = await post(stack, code, secret, squatted)
    assert r.status_code == 201 and r.json()["outcome"] == "created", r.text  # the installation still comes
    assert (await stack.get(r.json()["ticket_id"], ADMIN)).json()["customer_id"] == victim["customer"]
    (o,) = await rows(db, CustomerOrder, CustomerOrder.source == code, CustomerOrder.external_ref == decoy_no)
    assert (o.customer_id, o.status, o.amount, o.summary) == (decoy["customer"], "draft", Decimal("1.00"), "pre")
    (ev,) = await rows(db, IntegrationEvent, IntegrationEvent.event_id == squatted["event_id"])
    assert ev.outcome == "created" and ev.detail is not None and "another customer" in ev.detail["order"]

    r = await post(stack, code, secret, paid(merged_no))
    assert r.status_code == 201, r.text
    (o,) = await rows(db, CustomerOrder, CustomerOrder.source == code, CustomerOrder.external_ref == merged_no)
    assert (o.customer_id, o.status, o.amount, o.summary) == (merged, "paid", Decimal("4999.50"), "AC X2")

    # And staff may no longer write an order of the source: neither a new one nor over the ERP's.
    for owner, number in ((decoy["customer"], decoy_no), (victim["customer"], merged_no), (decoy["customer"], "X1")):
        r = await stack.http.post(
            f"/customers/{owner}/orders",
            json={"source": code, "external_ref": number, **pre, "status": "refunded", "currency": "CNY"},
            headers=stack.as_actor("agent-wang"),
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "source"], r.text
    (o,) = await rows(db, CustomerOrder, CustomerOrder.source == code, CustomerOrder.external_ref == merged_no)
    assert o.status == "paid"
    assert await rows(db, CustomerOrder, CustomerOrder.source == code, CustomerOrder.external_ref == "X1") == []


async def test_ecommerce_return_raises_a_return_ticket_and_marks_the_order(stack, db):
    who = await people(db, asset=False)
    code, secret = await source_with(stack, "shop", preset_rules("ecommerce"), channel="ecommerce")
    order_no = f"EC-{uuid.uuid4().hex[:8]}"
    data = {
        "return_no": f"RT-{uuid.uuid4().hex[:8]}",
        "order_no": order_no,
        "reason": "damaged",
        "buyer": {"phone": who["phone"]},
        "refund": {"amount": "129.00", "currency": "CNY"},
        "items_text": "1 x kettle",
        "comment": "arrived cracked",
    }
    r = await post(stack, code, secret, event("return.requested", data))
    assert r.status_code == 201, r.text
    t = (await stack.get(r.json()["ticket_id"], ADMIN)).json()
    assert (t["ticket_type"], t["channel"], t["customer_id"], t["description"]) == (
        "ecommerce_return",
        "ecommerce",
        who["customer"],
        "arrived cracked",
    )
    assert t["fields"]["refund_amount"] == {"amount": "129.00", "currency": "CNY"}
    assert (t["fields"]["return_reason"], t["fields"]["items"]) == ("damaged", "1 x kettle")
    (order,) = await rows(db, CustomerOrder, CustomerOrder.source == code)
    assert (order.external_ref, order.status, order.customer_id) == (order_no, "return_requested", who["customer"])

    # A reason the form does not know: a 422 naming the event's field, recorded as rejected;
    # the shop sends the same event again, corrected: it is taken.
    bad = event("return.requested", data | {"return_no": f"RT-{uuid.uuid4().hex[:8]}", "reason": "bored"})
    r = await post(stack, code, secret, bad)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "data", "reason"], r.text
    (rejected,) = await rows(db, IntegrationEvent, IntegrationEvent.event_id == bad["event_id"])
    assert rejected.outcome == "rejected" and rejected.ticket_id is None
    bad["data"]["reason"] = "wrong_item"
    r = await post(stack, code, secret, bad)
    assert r.status_code == 201 and r.json()["outcome"] == "created", r.text


async def test_iot_alarm_raises_a_repair_for_the_asset_and_its_customer(stack, db):
    who = await people(db)
    code, secret = await source_with(stack, "iot", preset_rules("iot"))
    r = await post(stack, code, secret, alarm(who["serial"], kind="power", code="P01"))
    assert r.status_code == 201, r.text
    assert r.json()["rule"] == "power_loss"
    t = (await stack.get(r.json()["ticket_id"], ADMIN)).json()
    assert (t["ticket_type"], t["region"], t["asset_id"], t["customer_id"]) == (
        "equipment_repair",
        "east",
        who["asset"],
        who["customer"],
    )
    assert t["fields"]["device_id"] == who["serial"] and t["fields"]["fault"] == "no_power"
    assert t["title"] == f"Alarm P01 on {who['serial']}: no power"
    # An informational message meets no rule: ignored. An unknown serial: no region, a 422.
    r = await post(stack, code, secret, alarm(who["serial"], kind="status", severity="info"))
    assert r.status_code == 202
    r = await post(stack, code, secret, alarm("ZZ-99999999"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "data", "serial"], r.text


# --- repeats ---


async def test_a_storm_of_100_identical_alarms_makes_one_ticket_with_a_count_of_100(stack, db):
    who = await people(db)
    code, secret = await source_with(stack, "iot", preset_rules("iot"))
    storm = [alarm(who["serial"], code="T99") for _ in range(100)]
    started = time.monotonic()
    answers = await asyncio.gather(*(post(stack, code, secret, e) for e in storm))
    elapsed = time.monotonic() - started
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 99 + [201], [r.text for r in answers if r.status_code not in (200, 201)][:3]
    tickets = {r.json()["ticket_id"] for r in answers}
    assert len(tickets) == 1
    (ticket_id,) = tickets
    assert sorted(r.json()["count"] for r in answers) == list(range(1, 101))  # each counted once, in turn
    (occ,) = await rows(db, IntegrationOccurrence, IntegrationOccurrence.source == code)
    assert (occ.count, occ.ticket_id, occ.generation, occ.key_values) == (100, ticket_id, 1, [who["serial"], "T99"])
    async with db.session() as session:
        (seen,) = await store.integrations.occurrences_for(session, ticket_id)
    assert (seen.source, seen.rule, seen.count) == (code, "overheating", 100)
    assert seen.first_seen <= seen.last_seen
    listed = await stack.http.get("/tickets", params={"asset_id": who["asset"]}, headers=stack.as_actor(ADMIN))
    assert [t["id"] for t in listed.json()["items"]] == [ticket_id]
    shown = (await stack.get(ticket_id, ADMIN)).json()["reported"]  # the ticket says how often it was reported
    assert [(r["source"], r["rule"], r["count"]) for r in shown] == [(code, "overheating", 100)]
    print(f"storm: 100 alarms in {elapsed:.2f} s")


async def test_the_same_event_id_again_gets_the_first_outcome_and_is_not_counted(stack, db):
    who = await people(db)
    code, secret = await source_with(stack, "iot", preset_rules("iot"))
    first = alarm(who["serial"])
    created = await post(stack, code, secret, first)
    assert created.status_code == 201
    repeats = await asyncio.gather(*(post(stack, code, secret, first) for _ in range(5)))
    assert {r.status_code for r in repeats} == {200}
    assert all(r.json() == created.json() | {"repeat": True} for r in repeats)
    counted = await post(stack, code, secret, alarm(who["serial"]))
    assert counted.json()["count"] == 2  # the repeats were not counted
    # The same event id with another body is still that event: its first outcome.
    altered = first | {"data": first["data"] | {"code": "T77"}}
    assert (await post(stack, code, secret, altered)).json() == created.json() | {"repeat": True}
    ignored = event("device.ping", {})
    assert (await post(stack, code, secret, ignored)).status_code == 202
    again = await post(stack, code, secret, ignored)
    assert again.status_code == 202 and again.json()["repeat"] is True


async def test_after_a_ticket_is_cancelled_a_repeat_raises_a_new_ticket(stack, db):
    who = await people(db)
    code, secret = await source_with(stack, "iot", preset_rules("iot"))
    first = (await post(stack, code, secret, alarm(who["serial"]))).json()
    assert (await post(stack, code, secret, alarm(who["serial"]))).json()["count"] == 2
    r = await stack.act(first["ticket_id"], "cancel", "agent-wang", reason="sensor fault, not the machine")
    assert r.status_code == 200, r.text
    assert await status_of(db, first["ticket_id"], "cancelled") == "cancelled"
    r = await post(stack, code, secret, alarm(who["serial"]))
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["ticket_id"] != first["ticket_id"] and (second["outcome"], second["count"]) == ("created", 1)
    (occ,) = await rows(db, IntegrationOccurrence, IntegrationOccurrence.source == code)
    assert (occ.generation, occ.ticket_id, occ.count) == (2, second["ticket_id"], 1)
    third = (await post(stack, code, secret, alarm(who["serial"]))).json()
    assert (third["outcome"], third["ticket_id"], third["count"]) == ("added", second["ticket_id"], 2)
    async with db.session() as session:
        old = await store.integrations.occurrences_for(session, first["ticket_id"])
        new = await store.integrations.occurrences_for(session, second["ticket_id"])
    assert [o.count for o in old] == [2] and [o.count for o in new] == [2]  # each ticket keeps its own count


def reopening_rules() -> dict:
    return {
        "rules": [
            {
                "name": "line_stop",
                "event_type": "line.stopped",
                "template": "general",
                "region": "east",
                "title": "Line {$.data.line} stopped",
                "dedup": {"key": ["$.data.line"], "window": "PT1H"},
                "on_repeat_after_close": "reopen",
            }
        ]
    }


async def _resolved(stack, db, ticket_id: str) -> None:
    await stack.until(ticket_id, lambda t: t["active"] == ["work"])
    for action, body in (("claim", {}), ("start", {}), ("resolve", {"resolution": "restarted"})):
        r = await stack.act(ticket_id, action, "eng-li", **body)
        assert r.status_code == 200, r.text
    assert await status_of(db, ticket_id, "resolved") == "resolved"


async def test_a_repeat_within_the_window_reopens_a_resolved_ticket_when_the_rule_says_so(stack, db):
    code, secret = await source_with(stack, "line", reopening_rules())
    line = uuid.uuid4().hex[:6]
    first = (await post(stack, code, secret, event("line.stopped", {"line": line}))).json()
    await _resolved(stack, db, first["ticket_id"])
    r = await post(stack, code, secret, event("line.stopped", {"line": line}))
    assert r.status_code == 200 and (r.json()["outcome"], r.json()["ticket_id"]) == ("reopened", first["ticket_id"])
    assert (await stack.get(first["ticket_id"], ADMIN)).json()["status"] == "in_progress"


async def test_a_repeat_raises_a_new_ticket_when_the_old_one_cannot_be_reopened_or_the_window_passed(stack, db):
    code, secret = await source_with(stack, "line", reopening_rules())
    line = uuid.uuid4().hex[:6]
    first = (await post(stack, code, secret, event("line.stopped", {"line": line}))).json()
    await _resolved(stack, db, first["ticket_id"])
    assert (await stack.act(first["ticket_id"], "close", "agent-wang")).status_code == 200
    assert await status_of(db, first["ticket_id"], "closed") == "closed"
    # Closed: its workflow has ended, it cannot be reopened — a new ticket, even under `reopen`.
    second = (await post(stack, code, secret, event("line.stopped", {"line": line}))).json()
    assert second["outcome"] == "created" and second["ticket_id"] != first["ticket_id"]
    await _resolved(stack, db, second["ticket_id"])
    # Resolved, but the last stop was longer ago than the window: a new problem, a new ticket.
    async with db.session() as session:
        await session.exec(
            sa.update(IntegrationOccurrence)
            .where(IntegrationOccurrence.source == code)
            .values(last_seen=datetime.now(UTC) - timedelta(hours=2))
        )
        await session.commit()
    third = (await post(stack, code, secret, event("line.stopped", {"line": line}))).json()
    assert third["outcome"] == "created" and third["ticket_id"] not in (first["ticket_id"], second["ticket_id"])
    (occ,) = await rows(db, IntegrationOccurrence, IntegrationOccurrence.source == code)
    assert (occ.generation, occ.count) == (3, 1)
