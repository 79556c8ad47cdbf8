"""Issue #11's end to end: a known customer scans the QR sticker on an in-warranty machine under a
labour contract; the message through the signed QR channel opens an equipment_repair ticket that
knows the customer, the asset and the contract's SLA; the repair runs to a statement whose covered
lines are zero (labour: the contract, parts: the warranty), whose travel comes from the engineer's
distance to the site and whose discount is the customer's best (gold member, three referrals) —
checked to the cent. Demo data (api/demo.py load_all) is in the test database."""

import json
import time
import uuid
from decimal import Decimal

import pytest

from api.demo import demo_secret
from domain.geo import haversine_km
from domain.inbound_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from models.demo import ACTORS
from models.demo_customers import WALKTHROUGH_ASSET, WALKTHROUGH_CONTRACT, WALKTHROUGH_CUSTOMER, WALKTHROUGH_PHONE

pytestmark = pytest.mark.asyncio


async def scan(stack, body: dict) -> dict:
    raw = json.dumps(body).encode()
    ts = int(time.time())
    headers = {
        SIGNATURE_HEADER: sign(demo_secret("qr-demo"), ts, raw),
        TIMESTAMP_HEADER: str(ts),
        "Content-Type": "application/json",
    }
    r = await stack.http.post("/channels/qr-demo/inbound", content=raw, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_qr_scan_by_a_known_customer_runs_to_a_statement_priced_with_warranty_member_and_distance(stack):
    answer = await scan(
        stack,
        {
            "submission_id": f"walk-{uuid.uuid4().hex[:12]}",
            "qr_code": WALKTHROUGH_ASSET.qr_code,
            "phone": WALKTHROUGH_PHONE,
            "fault": "overheating",
            "text": "Compressor overheating again",
        },
    )
    assert answer["outcome"] == "created"
    tid = answer["ticket_id"]
    t = (await stack.get(tid, "sup-zhou")).json()
    assert (t["ticket_type"], t["region"], t["customer_id"], t["asset_id"]) == (
        "equipment_repair",
        "east",
        WALKTHROUGH_CUSTOMER.id,
        WALKTHROUGH_ASSET.id,
    )
    assert t["fields"]["device_id"] == WALKTHROUGH_ASSET.serial
    assert t["contract_sla"]["contract"] == WALKTHROUGH_CONTRACT.number and t["contract_sla"]["response"] == "PT1H"
    assert t["customer_360"]["customer"]["id"] == WALKTHROUGH_CUSTOMER.id

    # eng-li does the work (the supervisor gives it to him): his home is ~19.6 km from the site.
    t = await stack.until(tid, lambda t: t["nodes"].get("diagnose", {}).get("status") in ("assigned", "open"))
    r = await stack.act(tid, "assign", "sup-zhou", assignee="eng-li", node="diagnose")
    assert r.status_code == 200, r.text
    for action, body in (
        ("start", {}),
        (
            "complete",
            {
                "fields": {
                    "diagnosis": "fan bearing worn",
                    "parts_needed": True,
                    "part_sku": "FAN-CMP-120",
                    "part_quantity": 1,
                }
            },
        ),
    ):
        r = await stack.act(tid, action, "eng-li", **body)
        assert r.status_code == 200, (action, r.text)
    t = await stack.until(tid, lambda t: "repair" in t["active"])
    for action, body in (
        ("claim", {}),
        ("start", {}),
        ("complete", {"fields": {"minutes_worked": 75, "repair_cost": {"amount": "420.00", "currency": "CNY"}}}),
    ):
        r = await stack.act(tid, action, "eng-li", **body)
        assert r.status_code == 200, (action, r.text)
    t = await stack.until(tid, lambda t: "confirm" in t["active"])
    assert "confirm" in t["active"], t["active"]

    st = (await stack.http.get(f"/tickets/{tid}/statement", headers=stack.as_actor("fin-qian"))).json()["statement"]
    lines = {(line["kind"], line["code"]): line for line in st["lines"]}
    # Labour (on-site time and the quoted repair cost) under the contract, the fan under the warranty: zero.
    for key, coverage in (
        (("service", "REPAIR-ONSITE"), f"contract {WALKTHROUGH_CONTRACT.number}"),
        (("service", "REPAIR-COST"), f"contract {WALKTHROUGH_CONTRACT.number}"),
        (("part", "FAN-CMP-120"), "warranty"),
    ):
        line = lines[key]
        assert line["coverage"].startswith(coverage), line
        assert Decimal(line["amount"]) == 0 and Decimal(line["gross"]) == 0
        assert Decimal(line["covered_amount"]) > 0
    assert Decimal(lines[("service", "REPAIR-COST")]["covered_amount"]) == Decimal("420.00")
    # Travel: eng-li's home to the site, beyond the 10 free km, whole km at 2.50.
    home = next(a for a in ACTORS if a.id == "eng-li")
    km = haversine_km(home.home_lat, home.home_lon, WALKTHROUGH_ASSET.lat, WALKTHROUGH_ASSET.lon)
    assert 19 < km < 20
    assert Decimal(st["inputs"]["travel_km"]) == Decimal(str(round(km, 1)))
    travel = lines[("surcharge", "travel")]
    assert (Decimal(travel["quantity"]), Decimal(travel["amount"])) == (Decimal("10"), Decimal("25.00"))
    # Gold member (10 %) with three referrals (20 %): the better one, on the travel only.
    assert (st["inputs"]["member_level"], st["inputs"]["referrals"]) == ("gold", 3)
    discounts = [line for line in st["lines"] if line["kind"] == "discount"]
    assert [(d["code"], Decimal(d["amount"])) for d in discounts] == [("referral:3", Decimal("-5.00"))]
    # 25.00 − 5.00 = 20.00 net, 6 % VAT 1.20: 21.20 CNY to the cent.
    totals = st["totals"]
    assert (Decimal(totals["net"]), Decimal(totals["tax"]), Decimal(totals["total"])) == (
        Decimal("20.00"),
        Decimal("1.20"),
        Decimal("21.20"),
    )
