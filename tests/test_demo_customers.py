"""The demo customer data ``make run`` loads (models/demo_customers.py, store/demo_customers.py),
against the real database: loading twice changes nothing, the rows are the realistic shapes the
rest of the service expects (phones in E.164, serials the repair form accepts, referrals without
a cycle, warranties and contracts in and out of date), and the named walkthrough fixtures are
exactly what the README relies on."""

import base64
import re
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from sqlmodel import SQLModel, col, delete, select

from domain.geo import haversine_km
from domain.identities import normalize
from models import demo, demo_customers
from models.customer_tables import (
    Asset,
    Customer,
    CustomerIdentity,
    CustomerOrder,
    ExchangeRateRow,
    ServiceContract,
    SlaTier,
)
from models.db import Database
from models.demo_customers import (
    EAST_COMPANY,
    REFERENCE_DATE,
    SOUTH_ASSET,
    SOUTH_COMPANY,
    UNCOVERED_ASSET,
    WALKTHROUGH_CUSTOMER,
    WALKTHROUGH_OPENID,
    WALKTHROUGH_PHONE,
)
from store import assets as asset_store
from store import customers as customer_store
from store.demo_customers import load_customers

ROOT = Path(__file__).resolve().parent.parent
TABLES: list[type[SQLModel]] = [
    SlaTier,
    Customer,
    CustomerIdentity,
    Asset,
    ServiceContract,
    CustomerOrder,
    ExchangeRateRow,
]


async def _all(db: Database, model: type[SQLModel]) -> list[dict[str, Any]]:
    """Every row of a table, as plain dicts in primary-key order."""
    async with db.session() as s:
        pk = [col(getattr(model, c.name)) for c in model.__table__.primary_key]  # type: ignore[attr-defined]
        return [row.model_dump() for row in (await s.exec(select(model).order_by(*pk))).all()]


async def _demo_rows(db: Database, model: type[SQLModel], column: Any, prefix: str) -> list[Any]:
    async with db.session() as s:
        return list((await s.exec(select(model).where(col(column).startswith(prefix)))).all())


def _years_between(start: date, end: date) -> float:
    return (end - start).days / 365.25


async def test_loading_twice_changes_nothing_and_loads_every_demo_row(db: Database) -> None:
    first = await load_customers(db)
    before = {m.__name__: await _all(db, m) for m in TABLES}
    second = await load_customers(db)
    after = {m.__name__: await _all(db, m) for m in TABLES}

    assert second == first
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
    assert after == before  # not a row added, changed or duplicated
    data = demo_customers.demo_customers()
    assert first == {
        "sla tiers": len(data.tiers),
        "customers": len(data.customers),
        "identities": len(data.identities),
        "assets": len(data.assets),
        "contracts": len(data.contracts),
        "orders": len(data.orders),
        "exchange rates": len(data.rates),
    }
    assert first["customers"] >= 200 and first["assets"] >= 300
    assert 70 <= first["contracts"] <= 90 and first["orders"] >= 400


async def test_a_load_fills_in_what_is_missing_and_keeps_edits_made_since(db: Database) -> None:
    data = demo_customers.demo_customers()
    edited, gone = data.customers[10].id, data.orders[-1]
    async with db.session() as s:
        row = await s.get(Customer, edited)
        assert row is not None
        original = row.notes
        row.notes = "prefers calls after 18:00"
        s.add(row)
        await s.exec(
            delete(CustomerOrder).where(
                col(CustomerOrder.source) == gone.source, col(CustomerOrder.external_ref) == gone.external_ref
            )
        )
        await s.commit()
    try:
        counts = await load_customers(db)
        async with db.session() as s:
            assert (await s.get(Customer, edited)).notes == "prefers calls after 18:00"  # type: ignore[union-attr]
            q = select(CustomerOrder).where(
                CustomerOrder.source == gone.source, CustomerOrder.external_ref == gone.external_ref
            )
            back = (await s.exec(q)).one()
        assert (back.customer_id, back.amount, back.currency) == (gone.customer_id, gone.amount, gone.currency)
        assert counts["orders"] == len(data.orders)
    finally:
        async with db.session() as s:
            row = await s.get(Customer, edited)
            assert row is not None
            row.notes = original
            s.add(row)
            await s.commit()


def test_generation_is_deterministic_and_follows_the_seed() -> None:
    def dump(d: demo_customers.DemoCustomers) -> list[list[dict[str, Any]]]:
        return [[r.model_dump() for r in rows] for rows in (d.customers, d.identities, d.assets, d.orders)]

    assert dump(demo_customers.build()) == dump(demo_customers.build())
    other = demo_customers.build(seed=12)
    assert dump(other) != dump(demo_customers.build())


async def test_every_identity_is_in_normal_form_and_every_customer_has_a_mobile(db: Database) -> None:
    customers = await _demo_rows(db, Customer, Customer.id, "cus_demo")
    identities = await _demo_rows(db, CustomerIdentity, CustomerIdentity.customer_id, "cus_demo")
    assert len(customers) >= 200
    phones = {i.customer_id: i.value for i in identities if i.kind == "phone"}
    assert set(phones) == {c.id for c in customers}
    for i in identities:
        assert normalize(i.kind, i.value) == i.value, i
    for value in phones.values():
        assert value.startswith("+861") and len(value) == 14, value
        number = phonenumbers.parse(value)
        assert phonenumbers.is_valid_number(number), value
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE, value
    kinds = Counter(i.kind for i in identities)
    assert kinds["email"] >= 50 and kinds["wechat_openid"] >= 50 and kinds["wechat_unionid"] >= 20
    assert kinds["app_user"] >= 20
    # the demo never writes to a real mailbox: reserved example domains only
    assert all(re.search(r"@([a-z0-9-]+\.)*example\.(com|net|org)$", i.value) for i in identities if i.kind == "email")


async def test_customers_spread_over_regions_kinds_levels_consent_and_currencies(db: Database) -> None:
    customers = await _demo_rows(db, Customer, Customer.id, "cus_demo")
    assert {c.region for c in customers} == {"east", "south", "north"}
    assert min(Counter(c.region for c in customers).values()) >= 30
    kinds = Counter(c.kind for c in customers)
    assert kinds["company"] >= 20 and kinds["person"] >= 150
    assert any(c.name == "华东精密制造有限公司" for c in customers)
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", c.name) for c in customers if c.kind == "person")
    assert {c.member_level for c in customers} == {None, "silver", "gold", "platinum"}
    assert len({c.referral_code for c in customers}) == len(customers)
    consenting = [c for c in customers if c.consent.get("sms") and c.consent.get("wechat")]
    assert len(consenting) > len(customers) / 2
    assert any(not any(c.consent.values()) for c in customers)  # some consent to nothing
    currencies = Counter(c.billing_currency for c in customers)
    assert set(currencies) == {None, "USD", "HKD"} and currencies[None] > 0.9 * len(customers)


async def test_referrals_point_at_earlier_customers_without_a_cycle(db: Database) -> None:
    async with db.session() as s:
        everyone = {c.id: c for c in (await s.exec(select(Customer))).all()}
    demo_rows = [c for c in everyone.values() if c.id.startswith("cus_demo")]
    referred = [c for c in demo_rows if c.referred_by is not None]
    assert len(referred) >= 20
    for c in referred:
        referrer = everyone.get(c.referred_by)  # type: ignore[arg-type]
        assert referrer is not None, c
        assert referrer.created_at < c.created_at and referrer.region == c.region
        seen, at = {c.id}, referrer
        while at.referred_by is not None:
            assert at.referred_by not in seen, f"referral cycle through {at.id}"
            seen.add(at.id)
            at = everyone[at.referred_by]


async def test_assets_take_repair_form_serials_and_stand_near_their_region(db: Database) -> None:
    template = yaml.safe_load((ROOT / "templates" / "equipment_repair.yaml").read_text())
    pattern = next(f["pattern"] for f in template["fields"] if f["name"] == "device_id")
    assets = await _demo_rows(db, Asset, Asset.id, "ast_demo")
    owners = {c.id: c for c in await _demo_rows(db, Customer, Customer.id, "cus_demo")}
    assert len(assets) >= 300
    for a in assets:
        assert re.fullmatch(pattern, a.serial), a.serial
        assert a.qr_code == demo_customers.qr_code(a.serial) and len(a.qr_code) == 20
        assert a.serial not in a.qr_code and len(base64.b32decode(a.qr_code + "====")) == 12
        assert a.region == owners[a.customer_id].region
        assert haversine_km(*demo.CENTRES[a.region], a.lat, a.lon) <= 30.0, a
        assert a.site_address and a.model
        assert REFERENCE_DATE - timedelta(days=4 * 366) <= a.installed_on <= REFERENCE_DATE
        assert 0.9 < _years_between(a.installed_on, a.warranty_end) < 3.1
    assert len({a.qr_code for a in assets}) == len(assets)
    in_warranty = [a for a in assets if a.warranty_end >= REFERENCE_DATE]
    assert 0.3 * len(assets) < len(in_warranty) < 0.95 * len(assets)
    assert len([a for a in assets if a.warranty_end > date(2027, 12, 31)]) >= 20
    covers = Counter(a.warranty_covers for a in assets)
    assert covers["labour_and_parts"] > len(assets) / 2 and covers["parts"] >= 10
    families = {a.serial.split("-")[0] for a in assets}
    assert {"CMP", "CHL", "AHU", "CNC"} <= families


async def test_contracts_cover_assets_of_their_own_customer_some_expired(db: Database) -> None:
    contracts = await _demo_rows(db, ServiceContract, ServiceContract.id, "ctr_demo")
    assets = {a.id: a for a in await _demo_rows(db, Asset, Asset.id, "ast_demo")}
    tiers = {t.code: t for t in await _all_tiers(db)}
    assert {"gold", "silver", "standard"} <= set(tiers)
    assert (tiers["gold"].response_minutes, tiers["gold"].resolution_minutes) == (60, 480)
    assert (tiers["silver"].response_minutes, tiers["silver"].resolution_minutes) == (240, 1440)
    assert 70 <= len(contracts) <= 90
    for c in contracts:
        assert c.valid_from <= c.valid_to and (c.covers_labour or c.covers_parts)
        assert c.sla_tier is None or c.sla_tier in tiers
        if c.asset_id is not None:
            assert assets[c.asset_id].customer_id == c.customer_id
    expired = [c for c in contracts if c.valid_to < REFERENCE_DATE]
    current = [c for c in contracts if c.valid_from <= REFERENCE_DATE <= c.valid_to]
    assert len(expired) >= 10 and len(current) >= 30
    blanket = [c for c in contracts if c.asset_id is None]
    assert len(blanket) >= 20 and len(contracts) - len(blanket) >= 20
    assert any(c.covers_labour and not c.covers_parts for c in contracts)
    assert len({c.number for c in contracts}) == len(contracts)


async def _all_tiers(db: Database) -> list[SlaTier]:
    async with db.session() as s:
        return list((await s.exec(select(SlaTier))).all())


async def test_orders_and_exchange_rates(db: Database) -> None:
    orders = await _demo_rows(db, CustomerOrder, CustomerOrder.customer_id, "cus_demo")
    demo_refs = {(o.source, o.external_ref) for o in demo_customers.demo_customers().orders}
    orders = [o for o in orders if (o.source, o.external_ref) in demo_refs]
    customers = {c.id: c for c in await _demo_rows(db, Customer, Customer.id, "cus_demo")}
    assert len(orders) >= 400
    assert Counter(o.source for o in orders).keys() == {"erp", "ecommerce"}
    for o in orders:
        assert isinstance(o.amount, Decimal) and o.amount > 0 and o.amount == o.amount.quantize(Decimal("0.01"))
        assert o.currency == (customers[o.customer_id].billing_currency or "CNY")
        assert o.external_ref and o.summary and o.status
    assert Counter(o.currency for o in orders)["CNY"] > 0.9 * len(orders)
    assert {"USD", "HKD"} <= {o.currency for o in orders}
    purchases = [o for o in orders if o.asset_id is not None]
    assert len(purchases) >= 150

    async with db.session() as s:
        rates = (await s.exec(select(ExchangeRateRow).where(ExchangeRateRow.source == "demo"))).all()
    pairs = Counter((r.base, r.quote) for r in rates)
    assert set(pairs) >= {("CNY", "USD"), ("CNY", "HKD"), ("USD", "CNY"), ("HKD", "CNY")}
    assert min(pairs.values()) >= 3
    by_key = {(r.base, r.quote, r.as_of): r.rate for r in rates}
    for (base, quote, as_of), rate in by_key.items():
        inverse = by_key[(quote, base, as_of)]
        assert abs(rate * inverse - 1) < Decimal("0.0001")
    assert Decimal("6.5") < by_key[("USD", "CNY", max(r.as_of for r in rates))] < Decimal("8")


async def test_walkthrough_fixtures_are_as_the_readme_tells(db: Database) -> None:
    eng_li = next(a for a in demo.ACTORS if a.id == "eng-li")
    async with db.session() as s:
        by_phone = await customer_store.resolve(s, "phone", normalize("phone", "138 0013 8000"))
        by_wechat = await customer_store.resolve(s, "wechat_openid", WALKTHROUGH_OPENID)
        assert by_phone is not None and by_wechat is not None and by_phone.id == by_wechat.id
        customer = by_phone
        assert (customer.id, customer.region, customer.member_level) == (WALKTHROUGH_CUSTOMER.id, "east", "gold")
        assert await customer_store.referral_count(s, [customer.id]) == 3
        assert normalize("phone", WALKTHROUGH_PHONE) == WALKTHROUGH_PHONE

        asset = await asset_store.by_serial(s, "CMP-000001")
        assert asset is not None and asset.customer_id == customer.id
        assert (await asset_store.by_qr(s, asset.qr_code)) == asset
        assert (asset.warranty_end, asset.warranty_covers) == (date(2029, 6, 30), "parts")
        km = haversine_km(eng_li.home_lat, eng_li.home_lon, asset.lat, asset.lon)  # type: ignore[arg-type]
        assert 19.0 < km < 20.0  # the demo price rules bill 10 km of travel

        for day in (REFERENCE_DATE, date(2027, 12, 31), date(2029, 6, 30)):
            cover = await asset_store.coverage(s, [customer.id], asset, day)
            assert cover.in_warranty and cover.warranty_covers == "parts"
            assert cover.contract is not None and cover.contract.number == "SC-DEMO-0001"
            assert cover.contract.covers_labour and not cover.contract.covers_parts
            assert cover.tier is not None and (cover.tier.code, cover.tier.response_minutes) == ("gold", 60)
            assert cover.tier.resolution_minutes == 480
        after = await asset_store.coverage(s, [customer.id], asset, date(2029, 7, 1))
        assert not after.in_warranty and after.contract is None

        # a south company billed in HKD, covered by a blanket silver contract though out of warranty
        south = await asset_store.by_serial(s, SOUTH_ASSET.serial)
        assert south is not None
        cover = await asset_store.coverage(s, [SOUTH_COMPANY.id], south, REFERENCE_DATE)
        assert not cover.in_warranty and cover.contract is not None and cover.contract.asset_id is None
        assert (cover.contract.number, cover.tier and cover.tier.code) == ("SC-DEMO-0002", "silver")
        assert (await customer_store.get(s, SOUTH_COMPANY.id)).billing_currency == "HKD"  # type: ignore[union-attr]

        # an east company's machine nothing covers any more (warranty over, contract expired)
        uncovered = await asset_store.by_serial(s, UNCOVERED_ASSET.serial)
        assert uncovered is not None and uncovered.customer_id == EAST_COMPANY.id
        cover = await asset_store.coverage(s, [EAST_COMPANY.id], uncovered, REFERENCE_DATE)
        assert not cover.in_warranty and cover.contract is None and cover.tier is None
