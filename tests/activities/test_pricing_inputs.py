"""settlement.settle with ``SettleInput.context``, against PostgreSQL rows: the customer's member
level and referrals (across a merge), the asset's warranty and the customer's contract as
coverage, the travel distance from the engineer's home, night and holiday from the region's
calendar, the billing currency and the rate table — each checked to the cent — and what happens
when a fact is missing, when the node sent a value itself, and on a retry."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import select
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import settlement
from activities.settlement import settle_ticket
from models.calendar import BusinessCalendar
from models.customer_tables import Asset, Customer, ExchangeRateRow, ServiceContract
from models.db import Database
from models.demo_pricing import DEMO_PRICING
from models.pricing import CURRENCIES, PricingRequest, RegionPricing
from models.settlement import SettleContext, SettleInput, SettleItems, SettleResult
from models.tables import Actor, Region
from store import assets as store_assets
from store import pricing_inputs
from tests.activities.test_settlement import publish, rows, ticket, uid

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = BusinessCalendar.weekly("Asia/Shanghai", ["09:00-12:00", "13:00-18:00"], "mon-fri", holiday_country="CN")
SITE = (31.2304, 121.4737)
HOME = (31.4408, 121.4737)  # 23.395 km north of the site: 23.4 km
SATURDAY_10 = datetime(2026, 12, 12, 10, 0, tzinfo=SHANGHAI)
FRIDAY_21 = datetime(2026, 12, 11, 21, 0, tzinfo=SHANGHAI)
FRIDAY_10 = datetime(2026, 12, 11, 10, 0, tzinfo=SHANGHAI)
WORK = {
    "services": [{"code": "REPAIR-ONSITE", "minutes": 95}],
    "parts": [{"sku": "FAN-120", "quantity": "1"}],
    "conditions": ["urban"],
}


@dataclass
class World:
    """One region (its own calendar and the demo east rules) with an engineer 23.4 km from the
    site, a gold customer with 3 referrals (one through a merged record), an asset in warranty
    for parts until 2027-03-31 and a 2026 contract covering labour on it."""

    region: str
    engineer: str
    customer: str
    merged: str
    asset: str
    contract: str


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def customer_row(region: str, **kw: Any) -> Customer:
    now = datetime.now(UTC)
    values = {"id": new_id("cus"), "name": "Test customer", "region": region, "referral_code": f"R{uid()}{uid()}"}
    return Customer(**(values | kw), created_at=now, updated_at=now)


def asset_row(region: str, customer_id: str, **kw: Any) -> Asset:
    serial = f"SN-{uid()}{uid()}"
    values = {"id": new_id("ast"), "customer_id": customer_id, "region": region, "serial": serial}
    values |= {"model": "Chiller X", "qr_code": f"QR-{uid()}{uid()}", "lat": SITE[0], "lon": SITE[1]}
    return Asset(**(values | kw), created_at=datetime.now(UTC))


@pytest.fixture
async def world(db: Database) -> World:
    region = f"p{uid().lower()}"
    async with db.session() as s:
        s.add(
            Region(
                code=region, name="Pricing inputs", timezone="Asia/Shanghai", calendar=CALENDAR.model_dump(mode="json")
            )
        )
        await s.commit()
    await publish(
        db,
        RegionPricing.model_validate(
            DEMO_PRICING["east"].model_dump(mode="json") | {"region": region, "version": "t1"}
        ),
    )
    engineer = f"eng-{uid().lower()}"
    gold = customer_row(region, member_level="gold")
    merged = customer_row(region, merged_into=gold.id)
    referred = [customer_row(region, referred_by=gold.id), customer_row(region, referred_by=gold.id)]
    referred.append(customer_row(region, referred_by=merged.id))  # the family's referrals count
    referred.append(customer_row(region, referred_by=gold.id, merged_into=gold.id))  # a merged record: not a referral
    asset = asset_row(region, gold.id, warranty_end=date(2027, 3, 31), warranty_covers="parts")
    contract = ServiceContract(
        id=new_id("ctr"),
        number=f"SC-2026-{uid()}",
        customer_id=merged.id,  # written on the merged record: it still covers the survivor's work
        asset_id=asset.id,
        covers_labour=True,
        valid_from=date(2026, 1, 1),
        valid_to=date(2026, 12, 31),
        created_at=datetime(2025, 12, 15, tzinfo=UTC),  # signed before it runs, long before the work
    )
    async with db.session() as s:
        s.add(
            Actor(
                id=engineer, name="Engineer", roles=["engineer"], regions=[region], home_lat=HOME[0], home_lon=HOME[1]
            )
        )
        s.add(gold)
        await s.flush()
        s.add(merged)
        await s.flush()
        s.add_all(referred)
        s.add(asset)
        await s.flush()
        s.add(contract)
        await s.commit()
    return World(region, engineer, gold.id, merged.id, asset.id, contract.number)


def settle_input(w: World, tid: str, context: dict[str, Any], **items: Any) -> SettleInput:
    return SettleInput(
        ticket_id=tid,
        region=w.region,
        ticket_type="equipment_repair",
        request=SettleItems.model_validate(WORK | items),
        context=SettleContext.model_validate(context),
    )


def lines(result: SettleResult) -> list[tuple]:
    return [
        (line.kind.value, line.code, line.amount, line.tax, line.coverage, line.covered_amount)
        for line in result.statement.lines
    ]


# --- everything at once, to the cent ---


async def test_warranty_contract_member_referrals_distance_and_holiday(db: Database, world: World):
    w, tid = world, ticket()
    ctx = {"customer_id": w.customer, "asset_id": w.asset, "engineer_id": w.engineer, "worked_at": SATURDAY_10}
    quoted = [*WORK["services"], {"code": "REPAIR-COST", "amount": "380.50"}]
    result = await ActivityEnvironment().run(settle_ticket, settle_input(w, tid, ctx, services=quoted))
    contract, warranty = f"contract {w.contract}", "warranty until 2027-03-31"
    # Labour (the quoted repair, base fee, hours) is the contract's, the fan the warranty's; urban
    # and holiday have a zero base; travel 23.4 km: 14 km beyond the 10 free at 2.50 = 35.00;
    # 3 referrals (20 %) beat gold (10 %): -7.00; VAT 6 % of 28.00 = 1.68.
    assert lines(result) == [
        ("service", "REPAIR-COST", D("0.00"), D("0.00"), contract, D("380.50")),
        ("service", "REPAIR-ONSITE", D("0.00"), D("0.00"), contract, D("80.00")),
        ("service", "REPAIR-ONSITE", D("0.00"), D("0.00"), contract, D("150.00")),
        ("part", "FAN-120", D("0.00"), D("0.00"), warranty, D("185.00")),
        ("surcharge", "travel", D("35.00"), D("2.10"), None, None),
        ("discount", "referral:3", D("-7.00"), D("-0.42"), None, None),
    ]
    t = result.statement.totals
    assert (t.net, t.tax, t.total, result.total, result.currency) == (
        D("28.00"),
        D("1.68"),
        D("29.68"),
        D("29.68"),
        "CNY",
    )
    assert result.statement.lines[-2].description == "Travel (23.4 km, first 10 km free)"
    inputs = result.statement.inputs
    assert inputs is not None
    assert (inputs.customer_id, inputs.asset_id, inputs.engineer_id) == (w.customer, w.asset, w.engineer)
    assert (inputs.member_level, inputs.referrals, inputs.travel_km) == ("gold", 3, D("23.4"))
    assert inputs.conditions == ("urban", "holiday")
    assert [(c.name, c.covers.value) for c in inputs.coverage] == [(warranty, "parts"), (contract, "labour")]
    assert (inputs.currency, inputs.rates_source, inputs.notes) == ("CNY", None, ())
    assert inputs.worked_at == SATURDAY_10
    # stored as priced: the row's JSON names the coverage and the inputs
    (row,) = await rows(db, tid)
    assert row.statement["lines"][0]["coverage"] == contract and row.statement["inputs"]["referrals"] == 3
    assert row.statement["inputs"]["travel_km"] == "23.4" and row.total == D("29.68")


async def test_holiday_surcharge_and_a_contract_for_one_asset_covers_nothing_else(db: Database, world: World):
    w = world
    # No asset: the contract names one asset, so nothing is covered; the site comes from the context.
    ctx = {"customer_id": w.customer, "engineer_id": w.engineer, "site_lat": SITE[0], "site_lon": SITE[1]}
    result = await settlement.settle(db, settle_input(w, ticket(), ctx | {"worked_at": SATURDAY_10}))
    # base 80, labour 1.25 h × 120 = 150, fan 185; urban 20 % of 230 = 46; holiday 50 % of 276 = 138;
    # travel 35; referrals 20 % of 449 = 89.80; VAT 6 % of 544.20 = 32.652 → 32.65.
    assert lines(result) == [
        ("service", "REPAIR-ONSITE", D("80.00"), D("4.80"), None, None),
        ("service", "REPAIR-ONSITE", D("150.00"), D("9.00"), None, None),
        ("part", "FAN-120", D("185.00"), D("11.10"), None, None),
        ("adjustment", "urban", D("46.00"), D("2.76"), None, None),
        ("surcharge", "holiday", D("138.00"), D("8.28"), None, None),
        ("surcharge", "travel", D("35.00"), D("2.10"), None, None),
        ("discount", "referral:3", D("-89.80"), D("-5.39"), None, None),
    ]
    assert (result.statement.totals.net, result.statement.totals.tax, result.total) == (
        D("544.20"),
        D("32.65"),
        D("576.85"),
    )
    assert result.statement.inputs is not None and result.statement.inputs.coverage == ()


async def test_a_usd_customer_at_night_is_billed_at_the_newest_stored_rate(db: Database, world: World):
    w = world
    now = datetime.now(UTC)
    async with db.session() as s:
        usd = customer_row(w.region, member_level="gold", billing_currency="USD")
        s.add(usd)
        await s.flush()
        # a warranty that ended: no coverage
        s.add(asset := asset_row(w.region, usd.id, warranty_end=date(2025, 6, 30), warranty_covers="labour_and_parts"))
        s.add_all(
            [
                ExchangeRateRow(base="CNY", quote="USD", rate=D("0.1400"), as_of=now - timedelta(days=1), source="t"),
                ExchangeRateRow(
                    base="CNY", quote="USD", rate=D("0.1383"), as_of=now - timedelta(seconds=1), source="t"
                ),
                ExchangeRateRow(base="CNY", quote="USD", rate=D("0.2000"), as_of=now + timedelta(days=1), source="t"),
            ]
        )
        await s.commit()
    ctx = {"customer_id": usd.id, "asset_id": asset.id, "engineer_id": w.engineer, "worked_at": FRIDAY_21}
    result = await settlement.settle(db, settle_input(w, ticket(), ctx))
    # Every list price × 0.1383, rounded once per line: base 11.064 → 11.06, labour 1.25 × 16.596 =
    # 20.745 → 20.75, fan 25.5855 → 25.59; urban 20 % of 31.81 = 6.36; night 30 % of 38.17 = 11.45;
    # travel 14 × 0.34575 = 4.84; gold 10 % of 54.46 = 5.45; VAT 6 % of 74.60 = 4.476 → 4.48.
    assert [(kind, code, amount, tax) for kind, code, amount, tax, *_ in lines(result)] == [
        ("service", "REPAIR-ONSITE", D("11.06"), D("0.66")),
        ("service", "REPAIR-ONSITE", D("20.75"), D("1.25")),
        ("part", "FAN-120", D("25.59"), D("1.54")),
        ("adjustment", "urban", D("6.36"), D("0.38")),
        ("surcharge", "night", D("11.45"), D("0.69")),
        ("surcharge", "travel", D("4.84"), D("0.29")),
        ("discount", "member:gold", D("-5.45"), D("-0.33")),
    ]
    s = result.statement
    assert (s.currency, s.totals.net, s.totals.tax, s.totals.total) == ("USD", D("74.60"), D("4.48"), D("79.08"))
    assert [(r.base, r.quote, str(r.rate)) for r in s.rates_used] == [("CNY", "USD", "0.1383")]
    assert s.rates_taken_at is not None and s.rates_taken_at >= now
    assert s.inputs is not None and s.inputs.rates_source is not None
    assert s.inputs.rates_source.startswith("exchange_rate table, CNY→USD as of ")
    assert (s.inputs.conditions, s.inputs.coverage, s.inputs.currency) == (("urban", "night"), (), "USD")
    assert s.lines[2].list_unit_price == D("185.00")


async def test_a_missing_rate_is_a_non_retryable_pricing_error_and_stores_nothing(db: Database, world: World):
    async with db.session() as s:
        have = set((await s.exec(select(ExchangeRateRow.quote).where(ExchangeRateRow.base == "CNY"))).all())
        currency = next(c for c in CURRENCIES if c != "CNY" and c not in have)
        s.add(c := customer_row(world.region, billing_currency=currency))
        await s.commit()
    tid = ticket()
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(settle_ticket, settle_input(world, tid, {"customer_id": c.id}))
    err = info.value
    assert (err.type, err.non_retryable) == ("Pricing:missing_rate", True)
    assert err.details[0]["path"] == "exchange_rate" and f"CNY→{currency}" in err.details[0]["message"]
    assert await rows(db, tid) == []
    # the node's own snapshot is used instead of the table
    snapshot = {"taken_at": "2026-12-04T08:00:00Z", "rates": [{"base": "CNY", "quote": currency, "rate": "2"}]}
    inp = SettleInput.model_validate(settle_input(world, tid, {"customer_id": c.id}).model_dump() | {"rates": snapshot})
    result = await settlement.settle(db, inp)
    assert result.currency == currency and result.statement.rates_used[0].rate == D("2")


# --- what the node sent wins; what is missing is noted ---


async def test_explicit_items_win_and_conditions_add_up(db: Database, world: World):
    w = world
    ctx = {"customer_id": w.customer, "asset_id": w.asset, "engineer_id": w.engineer, "worked_at": FRIDAY_21}
    inp = settle_input(
        w, ticket(), ctx, member_level="silver", referrals=1, travel_km="5", conditions=["urban", "rush"]
    )
    result = await settlement.settle(db, inp)
    inputs = result.statement.inputs
    assert inputs is not None
    assert (inputs.member_level, inputs.referrals, inputs.travel_km) == ("silver", 1, D("5"))
    assert inputs.conditions == ("urban", "rush", "night")
    codes = [line.code for line in result.statement.lines]
    assert "travel" not in codes and "rush" in codes and codes[-1] == "member:silver"
    # Friday 21:00 is in 2026: labour by the contract, the fan by the warranty
    assert {line.coverage for line in result.statement.lines if line.kind in ("service", "part")} == {
        f"contract {w.contract}",
        "warranty until 2027-03-31",
    }
    # coverage of the day worked: in 2027 the contract has ended, the warranty still runs
    later = await settlement.settle(
        db, settle_input(w, ticket(), ctx | {"worked_at": datetime(2027, 1, 6, 10, tzinfo=SHANGHAI)})
    )
    assert [(line.code, line.coverage) for line in later.statement.lines[:3]] == [
        ("REPAIR-ONSITE", None),
        ("REPAIR-ONSITE", None),
        ("FAN-120", "warranty until 2027-03-31"),
    ]


async def test_a_contract_written_after_the_work_does_not_price_it(db: Database, world: World):
    """A contract dated back over a repair already done would make that repair free: coverage on
    ``worked_at`` counts only contracts written (``created_at``) by then."""
    w = world
    late = ServiceContract(
        id=new_id("ctr"),
        number=f"SC-LATE-{uid()}",
        customer_id=w.customer,
        asset_id=None,  # all the customer's assets, labour and parts: it would beat the labour-only one
        covers_labour=True,
        covers_parts=True,
        valid_from=date(2026, 1, 1),
        valid_to=date(2026, 12, 31),
        created_at=FRIDAY_10 + timedelta(hours=2),
    )
    async with db.session() as s:
        s.add(late)
        await s.commit()
    ctx = {"customer_id": w.customer, "asset_id": w.asset, "engineer_id": w.engineer, "worked_at": FRIDAY_10}
    result = await settlement.settle(db, settle_input(w, ticket(), ctx))
    named = {line.coverage for line in result.statement.lines if line.kind in ("service", "part")}
    assert named == {f"contract {w.contract}", "warranty until 2027-03-31"}
    assert result.statement.inputs is not None
    assert f"contract {late.number}" not in [c.name for c in result.statement.inputs.coverage]
    # Work done after the contract was written: it counts (it covers most).
    after = await settlement.settle(db, settle_input(w, ticket(), ctx | {"worked_at": SATURDAY_10}))
    assert after.statement.inputs is not None
    assert f"contract {late.number}" in [c.name for c in after.statement.inputs.coverage]
    # The store: without ``created_before`` every valid contract counts (asset reads, intake's SLA).
    async with db.session() as s:
        family = [w.customer, w.merged]
        asset = await s.get(Asset, w.asset)
        day = date(2026, 12, 11)
        assert (await store_assets.coverage(s, family, asset, day)).contract.number == late.number  # type: ignore[union-attr]
        before = await store_assets.coverage(s, family, asset, day, created_before=FRIDAY_10)
        assert before.contract is not None and before.contract.number == w.contract
        found = await store_assets.contracts_on(s, family, w.asset, day, created_before=FRIDAY_10)
        assert [c.number for c in found] == [w.contract]


async def test_unknown_facts_are_left_out_with_a_note(db: Database, world: World):
    async with db.session() as s:
        s.add(vip := customer_row(world.region, member_level="diamond"))
        s.add(Actor(id=(nowhere := f"eng-{uid().lower()}"), name="No home", roles=["engineer"], regions=[world.region]))
        await s.commit()
    ctx = {"customer_id": vip.id, "asset_id": "ast_nope", "engineer_id": nowhere, "worked_at": FRIDAY_10}
    result = await settlement.settle(db, settle_input(world, ticket(), ctx))
    inputs = result.statement.inputs
    assert inputs is not None
    assert (inputs.member_level, inputs.referrals, inputs.travel_km, inputs.conditions) == (None, 0, D("0"), ("urban",))
    assert inputs.notes == (
        "asset ast_nope not found: no warranty, no site location",
        f"travel: engineer {nowhere} has no home location, 0 km",
        f"member level 'diamond' has no discount in region {world.region!r}'s price rules",
    )
    # 80 + 150 + 185 + urban 46 = 461.00, VAT 27.66
    assert result.total == D("488.66")
    gone = await settlement.settle(db, settle_input(world, ticket(), {"customer_id": "cus_nope"}))
    assert gone.statement.inputs is not None and gone.statement.inputs.notes == (
        "customer cus_nope not found: no member level, referrals or contract",
        "travel: no engineer named, 0 km",
    )


async def test_a_merged_record_prices_as_its_survivor(db: Database, world: World):
    w = world
    ctx = {"customer_id": w.merged, "asset_id": w.asset, "worked_at": FRIDAY_10}
    result = await settlement.settle(db, settle_input(w, ticket(), ctx))
    inputs = result.statement.inputs
    assert inputs is not None and (inputs.customer_id, inputs.member_level, inputs.referrals) == (w.customer, "gold", 3)
    # The asset alone names its owner
    owner = await settlement.settle(db, settle_input(w, ticket(), {"asset_id": w.asset, "worked_at": FRIDAY_10}))
    assert owner.statement.inputs is not None and owner.statement.inputs.customer_id == w.customer
    assert owner.total == result.total


# --- idempotency ---


async def test_a_retry_after_the_customer_changed_returns_the_stored_statement(db: Database, world: World):
    w, tid = world, ticket()
    ctx = {"customer_id": w.customer, "asset_id": w.asset, "engineer_id": w.engineer, "worked_at": SATURDAY_10}
    first = await settlement.settle(db, settle_input(w, tid, ctx))
    async with db.session() as s:
        await s.exec(sa.update(Customer).where(Customer.id == w.customer).values(member_level="platinum"))  # type: ignore[call-overload]
        await s.exec(sa.update(Asset).where(Asset.id == w.asset).values(warranty_end=date(2020, 1, 1)))  # type: ignore[call-overload]
        await s.commit()
    again = await settlement.settle(db, settle_input(w, tid, ctx))
    assert again == first and again.statement.inputs is not None and again.statement.inputs.member_level == "gold"
    assert len(await rows(db, tid)) == 1
    fresh = await settlement.settle(db, settle_input(w, ticket(), ctx))  # a new ticket sees the change
    assert fresh.statement.inputs is not None and fresh.statement.inputs.member_level == "platinum"
    assert all(line.coverage != "warranty until 2027-03-31" for line in fresh.statement.lines)


# --- the look-up itself ---


async def test_gather_is_a_handful_of_queries(db: Database, world: World):
    w = world
    ctx = SettleContext(customer_id=w.merged, asset_id=w.asset, engineer_id=w.engineer, worked_at=SATURDAY_10)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with db.session() as s:
            facts = await pricing_inputs.gather(s, w.region, ctx, datetime.now(UTC))
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    # asset, customer + its survivor, family (2 rounds), referrals, region, contracts, engineer
    assert len(statements) <= 9, statements
    assert facts.customer is not None and facts.customer.id == w.customer and facts.customer.referrals == 3
    assert facts.travel_km == D("23.4") and facts.conditions == ("holiday",)
    assert [c.name for c in facts.coverage] == ["warranty until 2027-03-31", f"contract {w.contract}"]


def test_a_context_travels_through_temporal_exactly():
    inp = SettleInput(
        ticket_id="K1",
        region="east",
        request=SettleItems(services=[{"code": "REPAIR-COST", "amount": "380.50"}]),
        context=SettleContext(customer_id="cus_1", worked_at=FRIDAY_21, site_lat=SITE[0], site_lon=SITE[1]),
    )
    converter = pydantic_data_converter.payload_converter
    payload = converter.to_payloads([inp])[0]
    assert b'"amount":"380.50"' in payload.data
    assert converter.from_payloads([payload], [SettleInput])[0] == inp
    with pytest.raises(ValueError, match="float"):
        PricingRequest(region="east", currency="CNY", services=[{"code": "REPAIR-COST", "amount": 380.5}])
