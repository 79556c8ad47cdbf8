"""Statements and price rules over HTTP against the real app (httpx) and database: finance-only
fields, regional scope, role checks, the reconciliation CSV, publishing rules."""

import asyncio
import csv
import gc
import io
import re
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities import settlement
from api.app import create_app
from api.routers import settlement as settlement_router
from models.db import Database
from models.demo import demo_api_key
from models.demo_pricing import DEMO_PRICING
from models.pricing import RateSnapshot, RegionPricing
from models.settlement import SettleInput, SettleItems, SettleResult
from models.settlement_tables import StatementRow
from models.tables import Actor, ApiKey, Region
from store import demo
from tests.conftest import settings_for, task_queue

PLAIN_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")

ACTORS = {  # name: (roles, regions: "R" is this test's own region)
    "agent": (["agent"], ["R"]),
    "engineer": (["engineer"], ["R"]),
    "manager": (["manager"], ["R"]),
    "supervisor": (["supervisor"], ["R"]),
    "finance": (["finance"], ["R"]),
    "finance-east": (["finance"], ["east"]),
    "manager-east": (["manager"], ["east"]),
}


class Api:
    """An httpx client on the app with this test's own region (active rules published) and actors."""

    def __init__(self, http: httpx.AsyncClient, db: Database, suffix: str, app: FastAPI) -> None:
        self.http, self.db, self.suffix, self.app = http, db, suffix, app
        self.region = f"r{suffix.lower()}"

    def who(self, name: str) -> dict[str, str]:
        if name in ("admin", "fin-qian", "agent-wang", "agent-chen", "sup-zhou", "mgr-sun"):
            return {"X-API-Key": demo_api_key(name)}  # the demo actors
        return {"X-API-Key": f"key-{name}-{self.suffix}"}

    async def get(self, path: str, actor: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.who(actor))

    async def put_rules(self, actor: str, region: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.put(f"/pricing/{region}", json=body, headers=self.who(actor))

    async def settle(
        self, kind: str = "final", region: str | None = None, tid: str | None = None, **kw: Any
    ) -> SettleResult:
        request = kw.pop("request", None) or SettleItems(
            services=[{"code": "REPAIR-ONSITE", "minutes": 95}],
            parts=[{"sku": "FAN-120", "quantity": "1"}],
            conditions=["urban"],
            travel_km="23.4",
        )
        inp = SettleInput(
            ticket_id=tid or ticket(),
            region=region or self.region,
            ticket_type="equipment_repair",
            kind=kind,
            request=request,
            **kw,
        )
        return await settlement.settle(self.db, inp)


def ticket() -> str:
    return f"K{uuid.uuid4().hex[:12].upper()}"


def rules_json(region: str, version: str = "1", **changes: Any) -> dict[str, Any]:
    return DEMO_PRICING["east"].model_dump(mode="json") | {"region": region, "version": version, **changes}


@pytest.fixture
async def api(db: Database, database_url: str, devserver: WorkflowEnvironment) -> AsyncIterator[Api]:
    suffix = uuid.uuid4().hex[:8].upper()
    app = create_app(settings_for(database_url, devserver, task_queue()), client=devserver.client)
    if not any(getattr(r, "path", None) == "/statements" for r in app.routes):
        app.include_router(settlement_router.router)
    region = f"r{suffix.lower()}"
    async with db.session() as s:
        s.add(Region(code=region, name=f"Settlement test {suffix}"))
        for name, (roles, regions) in ACTORS.items():
            s.add(
                Actor(
                    id=f"{name}-{suffix}", name=name, roles=roles, regions=[region if r == "R" else r for r in regions]
                )
            )
            s.add(ApiKey.for_secret(f"{name}-{suffix}", f"key-{name}-{suffix}", created_by="test"))
        await s.commit()
    await demo.load_pricing(db)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            a = Api(h, db, suffix, app)
            r = await a.put_rules("fin-qian", region, rules_json(region))
            assert r.status_code == 201, r.text
            yield a


# --- a ticket's statement ---


async def test_finance_sees_everything_other_roles_not_the_split_or_the_rules(api: Api):
    tid = ticket()
    pre = await api.settle("pre_settlement", tid=tid, budget=Decimal("400"), budget_tolerance_percent=Decimal("10"))
    # Only a pre-settlement so far: that is the ticket's statement.
    r = await api.get(f"/tickets/{tid}/statement", "agent")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["id"]) == ("pre_settlement", pre.statement_id)

    final = await api.settle(tid=tid, budget=Decimal("400"), budget_tolerance_percent=Decimal("10"))
    views = {
        who: (await api.get(f"/tickets/{tid}/statement", who)).json()
        for who in ("finance", "fin-qian", "admin", "agent", "engineer", "manager", "supervisor")
    }
    for who, body in views.items():
        finance = who in ("finance", "fin-qian", "admin")
        st = body["statement"]
        assert body["id"] == final.statement_id and body["status"] == "final", who
        assert body["finance_view"] is finance and ("split" in st) is finance, who
        assert all(("rule" in line) is finance for line in st["lines"]), who
        # Everything else is the same for everyone, amounts as exact strings.
        assert (body["total"], st["totals"]["total"], body["currency"]) == ("525.76", "525.76", "CNY")
        assert (body["pre_settlement_total"], body["difference"], body["exceeds_pre_settlement"]) == (
            "525.76",
            "0.00",
            False,
        )
        assert (body["over_budget"], body["budget"], body["budget_limit"]) == (True, "400.00", "440.00")
        assert body["budget_reason"] == (
            "total 525.76 CNY exceeds the budget 400.00 CNY + 10 % tolerance = 440.00 CNY by 85.76 CNY"
        )
    full = views["fin-qian"]["statement"]
    assert full == final.statement.model_dump(mode="json")
    assert full["split"] == {"platform": "105.15", "provider": "157.73", "engineer": "262.88"}
    assert [line["rule"] for line in full["lines"]][:2] == [
        "services.REPAIR-ONSITE.base_fee",
        "services.REPAIR-ONSITE.hourly_rate",
    ]
    redacted = views["agent"]["statement"]
    assert redacted == {k: v for k, v in full.items() if k != "split"} | {
        "lines": [{k: v for k, v in line.items() if k != "rule"} for line in full["lines"]]
    }
    # Fetched twice: identical. The pre-settlement is still there on request.
    assert (await api.get(f"/tickets/{tid}/statement", "fin-qian")).json() == views["fin-qian"]
    r = await api.get(f"/tickets/{tid}/statement", "agent", kind="pre_settlement")
    assert r.json()["id"] == pre.statement_id and "split" not in r.json()["statement"]


async def test_statements_outside_the_callers_regions_do_not_exist(api: Api):
    tid = ticket()
    await api.settle(tid=tid)
    for who in ("agent-wang", "agent-chen", "manager-east", "finance-east"):
        r = await api.get(f"/tickets/{tid}/statement", who)
        assert r.status_code == 404 and r.json()["code"] == "not_found", who
    unknown = await api.get(f"/tickets/{ticket()}/statement", "agent")
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("no statement for ticket")
    assert (await api.get(f"/tickets/{tid}/statement", "agent")).status_code == 200
    assert (await api.http.get(f"/tickets/{tid}/statement")).status_code == 401

    r = await api.get("/statements", "manager-east", region=api.region)
    assert r.status_code == 404
    r = await api.get("/statements/export.csv", "finance-east", region=api.region)
    assert r.status_code == 404
    # Without a region filter, the list simply holds none of them.
    r = await api.get("/statements", "finance-east", status="all", limit=1000)
    assert r.status_code == 200 and all(item["region"] == "east" for item in r.json()["items"])
    assert tid not in {item["ticket_id"] for item in r.json()["items"]}
    for path in (f"/pricing/{api.region}", f"/pricing/{api.region}/versions"):
        assert (await api.get(path, "agent-wang")).status_code == 404
    assert (await api.get("/pricing/nowhere", "fin-qian")).status_code == 404


# --- lists and the reconciliation export ---


async def test_only_finance_admin_managers_and_supervisors_list_statements(api: Api):
    tid = ticket()
    await api.settle("pre_settlement", tid=tid)
    final = await api.settle(tid=tid)
    for who in ("agent", "engineer", "agent-wang"):
        for path in ("/statements", "/statements/export.csv"):
            r = await api.get(path, who, region=api.region)
            assert r.status_code == 403 and r.json()["code"] == "forbidden", (who, path)
    for who in ("finance", "manager", "supervisor", "admin", "fin-qian"):
        r = await api.get("/statements", who, region=api.region)
        assert r.status_code == 200, (who, r.text)
        items = [i for i in r.json()["items"] if i["ticket_id"] == tid]
        assert [(i["id"], i["status"], i["total"]) for i in items] == [(final.statement_id, "final", "525.76")]
    r = await api.get("/statements", "manager", region=api.region, status="all")
    assert sorted(i["status"] for i in r.json()["items"] if i["ticket_id"] == tid) == ["final", "pre_settlement"]
    r = await api.get("/statements", "manager", region=api.region, status="bogus")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "status"]


async def test_reconciliation_csv_totals_equal_the_sum_of_the_statements(api: Api):
    usd = RateSnapshot(
        taken_at=datetime(2026, 11, 24, tzinfo=UTC),
        source="test",
        rates=[{"base": "CNY", "quote": "USD", "rate": "0.1383"}],
    )
    made = [
        await api.settle(),
        await api.settle(request=SettleItems(services=[{"code": "INSTALL"}])),
        await api.settle(
            request=SettleItems(
                services=[{"code": "INSPECT"}],
                parts=[{"sku": "SEAL-D40", "quantity": "3"}, {"sku": "SENSOR-T1", "quantity": "2"}],
                referrals=4,
            )
        ),
        await api.settle(
            request=SettleItems(
                currency="USD",
                services=[{"code": "REPAIR-ONSITE", "minutes": 70}],
                parts=[{"sku": "SENSOR-T1", "quantity": "1"}],
            ),
            rates=usd,
        ),
    ]
    await api.settle("pre_settlement")  # not money owed: the export lists final statements by default
    r = await api.get("/statements/export.csv", "fin-qian", region=api.region)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert f'filename="statements-{api.region}.csv"' in r.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0] == [
        "statement_id",
        "ticket_id",
        "ticket_version",
        "status",
        "region",
        "ticket_type",
        "created_at",
        "currency",
        "net",
        "tax",
        "total",
    ]
    body, totals = [row for row in table[1:] if row[0] != "TOTAL"], [row for row in table[1:] if row[0] == "TOTAL"]
    assert table[-len(totals) :] == totals  # the TOTAL rows come last
    assert [int(row[0]) for row in body] == [m.statement_id for m in made]  # one row per statement, oldest first
    for row, m in zip(body, made, strict=True):
        assert row[1] == m.ticket_id and row[3:5] == ["final", api.region] and row[7] == m.currency
        assert all(PLAIN_DECIMAL.match(v) for v in row[8:11]), row
        assert [Decimal(v) for v in row[8:11]] == [m.statement.totals.net, m.statement.totals.tax, m.total]
        assert row[8:11] == [str(m.statement.totals.net), str(m.statement.totals.tax), str(m.total)]

    # Each currency's TOTAL is exactly the sum of that currency's stored statements.
    async with api.db.session() as s:
        stored = (
            await s.exec(select(StatementRow).where(StatementRow.region == api.region, StatementRow.status == "final"))
        ).all()
    assert len(stored) == len(made)
    expected = {}
    for cur in sorted({m.currency for m in made}):
        mine = [m.statement.totals for m in made if m.currency == cur]
        sums = [
            sum((t.net for t in mine), Decimal(0)),
            sum((t.tax for t in mine), Decimal(0)),
            sum((t.total for t in mine), Decimal(0)),
        ]
        assert sums[2] == sum((row.total for row in stored if row.currency == cur), Decimal(0))
        expected[cur] = [str(v) for v in sums]
    assert {row[7]: row[8:11] for row in totals} == expected and [row[7] for row in totals] == ["CNY", "USD"]
    assert all(PLAIN_DECIMAL.match(v) for row in totals for v in row[8:11])

    # The list shows the same statements with the same amounts.
    listed = (await api.get("/statements", "fin-qian", region=api.region)).json()["items"]
    assert [(i["id"], i["net"], i["tax"], i["total"]) for i in listed] == [
        (int(row[0]), row[8], row[9], row[10]) for row in body
    ]

    # A period: from the second statement on (from inclusive, to exclusive).
    start, end = made[1].created_at, made[3].created_at
    r = await api.get(
        "/statements/export.csv", "manager", region=api.region, **{"from": start.isoformat(), "to": end.isoformat()}
    )
    period = [row for row in csv.reader(io.StringIO(r.text))][1:]
    assert [int(row[0]) for row in period if row[0] != "TOTAL"] == [made[1].statement_id, made[2].statement_id]
    assert [row[7:] for row in period if row[0] == "TOTAL"] == [
        [
            "CNY",
            str(made[1].statement.totals.net + made[2].statement.totals.net),
            str(made[1].statement.totals.tax + made[2].statement.totals.tax),
            str(made[1].total + made[2].total),
        ]
    ]
    r = await api.get(
        "/statements/export.csv", "manager", region=api.region, **{"from": "2000-01-01", "to": "2000-01-02"}
    )
    assert list(csv.reader(io.StringIO(r.text)))[1:] == [["TOTAL", "", "", "", "", "", "", "", "0", "0", "0"]]
    r = await api.get("/statements", "manager", region=api.region, **{"from": "2001-01-01", "to": "2000-01-01"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "to"]


class Download:
    """What an HTTP client reading the response as it arrives keeps of it: the status, the
    headers, how many body messages came, how many bytes, how many CSV lines and the last few
    (the body itself is not kept)."""

    def __init__(self) -> None:
        self.status, self.headers, self.chunks, self.bytes, self.lines = 0, {}, 0, 0, 0
        self.tail: list[str] = []
        self._partial = b""


async def download(app: FastAPI, path: str, headers: dict[str, str], **params: Any) -> Download:
    """GET ``path`` from the app through its ASGI interface, reading the body as it is sent.
    (httpx's ASGITransport collects the whole body before it answers, which would measure the
    client's memory, not the app's.)"""
    got, requested, done = Download(), asyncio.Event(), asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not requested.is_set():
            requested.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays connected until the whole body is in
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            got.status = message["status"]
            got.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            got.chunks += bool(body)
            got.bytes += len(body)
            *lines, got._partial = (got._partial + body).split(b"\r\n")
            got.lines += len(lines)
            got.tail = (got.tail + [line.decode() for line in lines[-4:]])[-4:]
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(params).encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "ticketflow.test", **headers}.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("ticketflow.test", 80),
    }
    await app(scope, receive, send)
    assert got._partial == b"", "the body ends with a line end"
    return got


async def seed_statements(api: Api, n: int, start: datetime, template: dict[str, Any]) -> None:
    """``n`` final statements of this test's region, one a millisecond from ``start`` (bulk insert)."""
    table = StatementRow.__table__
    rows = [
        {
            "ticket_id": f"S{api.suffix}{i:07d}",
            "ticket_version": 1,
            "status": "final",
            "region": api.region,
            "ticket_type": "equipment_repair",
            "rules_version": "1",
            "currency": "CNY",
            "net": Decimal("496.00") + i,
            "tax": Decimal("29.76"),
            "total": Decimal("525.76") + i,
            "statement": template,
            "created_at": start + timedelta(milliseconds=i),
        }
        for i in range(n)
    ]
    async with api.db.engine.begin() as conn:
        await conn.execute(table.insert(), rows)


async def test_the_export_streams_in_constant_memory(api: Api):
    """20,000 statements go out in many body messages while the app's peak memory (tracemalloc)
    stays under a bound that does not grow with the rows: the same as for 2,000 of them."""
    n, small = 20_000, 2_000
    template = {"lines": [], "totals": {}}  # never read by the export (its columns are)
    start = datetime(2031, 1, 1, tzinfo=UTC)
    await seed_statements(api, n, start, template)
    who = api.who("fin-qian")
    await download(api.app, "/statements/export.csv", who, region=api.region, to="2000-01-01")  # warm caches

    async def traced(**params: Any) -> tuple[Download, int]:
        gc.collect()
        tracemalloc.start()
        try:
            got = await download(api.app, "/statements/export.csv", who, region=api.region, **params)
            return got, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, few_peak = await traced(
        **{"from": start.isoformat(), "to": (start + timedelta(milliseconds=small)).isoformat()}
    )
    many, many_peak = await traced(**{"from": start.isoformat()})
    assert (few.status, many.status) == (200, 200)
    assert many.headers["content-type"] == "text/csv; charset=utf-8"
    assert f'filename="statements-{api.region}-20310101T000000Z.csv"' in many.headers["content-disposition"]
    assert (few.lines, many.lines) == (1 + small + 1, 1 + n + 1)  # header, rows, one TOTAL
    assert many.tail[-2].split(",")[1] == f"S{api.suffix}{n - 1:07d}"  # the last statement, then the TOTAL
    total = sum(Decimal("525.76") + i for i in range(n))
    net = sum(Decimal("496.00") + i for i in range(n))
    assert many.tail[-1] == f"TOTAL,,,,,,,CNY,{net},{Decimal('29.76') * n},{total}"
    assert many.bytes > 2_000_000 and many.chunks >= 10, (many.bytes, many.chunks)  # streamed, not one body
    # Constant memory: 10 times the rows, the same peak (streamed: ~2.9 MB for both, one batch of
    # rows and its CSV; buffered it was 28 MB for 2,000 and 279 MB for 20,000).
    assert many_peak < few_peak * 1.25 + 256 * 1024, (few_peak, many_peak)
    assert many_peak < 4 * 1024 * 1024, many_peak


# --- price rules ---


async def test_publishing_price_rules_validates_versions_and_hides_the_split(api: Api):
    region = api.region
    r = await api.put_rules("agent", region, rules_json(region, "2"))
    assert r.status_code == 403
    r = await api.put_rules("finance-east", region, rules_json(region, "2"))
    assert r.status_code == 404
    r = await api.put_rules("finance", "east", rules_json("east", "2"))
    assert r.status_code == 404  # east is not this finance actor's region

    bad = [
        (
            rules_json(
                region, "2", split=[{"party": "platform", "share": "0.5"}, {"party": "engineer", "share": "0.4"}]
            ),
            ["body", "split"],
            "shares_sum",
        ),
        (
            rules_json(
                region,
                "2",
                services=[
                    {
                        "strategy": "tiered",
                        "code": "FILTER",
                        "mode": "graduated",
                        "tiers": [{"over": "0", "up_to": "10", "unit_price": "30"}, {"over": "8", "unit_price": "25"}],
                    }
                ],
            ),
            ["body", "services", 0, "tiers", 1, "over"],
            "overlapping_tiers",
        ),
        (rules_json(region, "2", parts=[{"sku": "FAN", "price": 185.5}]), ["body", "parts", 0, "price"], None),
        (rules_json("south", "2"), ["body", "region"], "value_error"),
    ]
    for body, loc, kind in bad:
        r = await api.put_rules("finance", region, body)
        assert r.status_code == 422, r.text
        problem = r.json()["detail"][0]
        assert problem["loc"] == loc, problem
        if kind:
            assert problem["type"] == kind
    assert (await api.get(f"/pricing/{region}", "finance")).json()["version"] == "1"  # nothing published

    v2 = rules_json(region, "2", tax={"name": "VAT", "mode": "exclusive", "percent": "13"})
    r = await api.put_rules("finance", region, v2)
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["active"], r.json()["created_by"]) == ("2", True, f"finance-{api.suffix}")
    assert RegionPricing.model_validate(r.json()["rules"]) == RegionPricing.model_validate(v2)
    again = await api.put_rules("finance", region, v2)
    assert again.status_code == 200 and again.json()["created_at"] == r.json()["created_at"]
    r = await api.put_rules("admin", region, rules_json(region, "2"))
    assert r.status_code == 409 and "other content" in r.json()["detail"]
    r = await api.put_rules("admin", region, rules_json(region, "1"))
    assert r.status_code == 409 and "superseded" in r.json()["detail"]

    versions = (await api.get(f"/pricing/{region}/versions", "agent")).json()
    assert [(v["version"], v["active"]) for v in versions] == [("1", False), ("2", True)]
    finance_view = (await api.get(f"/pricing/{region}", "finance")).json()
    agent_view = (await api.get(f"/pricing/{region}", "agent")).json()
    assert finance_view["rules"]["split"] and finance_view["finance_view"]
    assert "split" not in agent_view["rules"] and not agent_view["finance_view"]
    assert agent_view["rules"] == {k: v for k, v in finance_view["rules"].items() if k != "split"}
    old = await api.get(f"/pricing/{region}", "finance", version="1")
    assert (old.json()["version"], old.json()["active"]) == ("1", False)
    assert (await api.get(f"/pricing/{region}", "finance", version="9")).status_code == 404

    # New settlements use the new version; statements already stored keep theirs.
    result = await api.settle()
    assert result.rules_version == "2" and result.statement.tax.percent == Decimal("13")


async def test_demo_rules_are_readable_per_region(api: Api):
    r = await api.get("/pricing/east", "agent-wang")
    assert r.status_code == 200 and "split" not in r.json()["rules"]
    codes = {s["code"] for s in r.json()["rules"]["services"]}
    assert {"REPAIR-ONSITE", "INSTALL"} <= codes
    assert {"FAN-120", "SENSOR-T1", "SEAL-D40"} <= {p["sku"] for p in r.json()["rules"]["parts"]}
    assert (await api.get("/pricing/south", "agent-wang")).status_code == 404
    r = await api.get("/pricing/south", "fin-qian")
    assert r.status_code == 200 and r.json()["rules"]["tax"] == {"name": "VAT", "mode": "exclusive", "percent": "6"}
    assert [s["party"] for s in r.json()["rules"]["split"]] == ["platform", "provider", "engineer"]
