"""settlement.settle against the real database: one statement per (ticket, version, kind), a retry
returns the stored one untouched, money stays exact through the database and Temporal, the
pre-settlement lock, the budget check and the mapping of pricing errors."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities import settlement
from activities.settlement import settle_ticket
from domain.pricing import compile_rules
from models.db import Database
from models.demo_pricing import DEMO_PRICING, DEMO_VERSION
from models.pricing import PricingRequest, RegionPricing, Statement
from models.settlement import SettleInput, SettleItems, SettlementKind, SettleResult
from models.settlement_tables import PriceRules, StatementRow
from models.tables import Region
from store import demo


def uid() -> str:
    return uuid.uuid4().hex[:8].upper()


def ticket() -> str:
    return f"K{uuid.uuid4().hex[:12].upper()}"


def rules_for(region: str, version: str = "1", **changes: Any) -> RegionPricing:
    """The demo east rules (6 % VAT exclusive, CNY, urban premium, 20/30/50 split) for ``region``."""
    data = DEMO_PRICING["east"].model_dump(mode="json") | {"region": region, "version": version, **changes}
    return RegionPricing.model_validate(data)


async def publish(db: Database, rules: RegionPricing) -> None:
    """Make ``rules`` the region's only active version (creating the region when needed)."""
    async with db.session() as s:
        if await s.get(Region, rules.region) is None:
            s.add(Region(code=rules.region, name=f"Test {rules.region}"))
            await s.flush()
        t = PriceRules.__table__
        await s.exec(sa.update(t).where(t.c.region == rules.region).values(active=False))  # type: ignore[call-overload]
        s.add(
            PriceRules(
                region=rules.region,
                version=rules.version,
                rules=rules.model_dump(mode="json"),
                active=True,
                created_at=datetime.now(UTC),
            )
        )
        await s.commit()


async def new_region(db: Database, **changes: Any) -> str:
    region = f"s{uid().lower()}"
    await publish(db, rules_for(region, **changes))
    return region


async def region_with(db: Database, **changes: Any) -> RegionPricing:
    rules = rules_for(f"s{uid().lower()}", **changes)
    await publish(db, rules)
    return rules


def items(**kw: Any) -> SettleItems:
    base: dict[str, Any] = {
        "services": [{"code": "REPAIR-ONSITE", "minutes": 95}],
        "parts": [{"sku": "FAN-120", "quantity": "1"}],
        "conditions": ["urban"],
        "travel_km": "23.4",
    }
    return SettleItems.model_validate(base | kw)


def settle_input(region: str, tid: str, **kw: Any) -> SettleInput:
    return SettleInput(
        **{"ticket_id": tid, "region": region, "ticket_type": "equipment_repair", "request": items(), **kw}
    )


async def rows(db: Database, tid: str) -> list[StatementRow]:
    async with db.session() as s:
        q = select(StatementRow).where(StatementRow.ticket_id == tid).order_by(StatementRow.id)
        return list((await s.exec(q)).all())


def no_float(value: Any, path: str = "$") -> None:
    """No float anywhere in a parsed JSON document."""
    assert not isinstance(value, float), f"float at {path}: {value!r}"
    if isinstance(value, dict):
        for k, v in value.items():
            no_float(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            no_float(v, f"{path}[{i}]")


def strict_json(text: str, ints: bool = False) -> Any:
    """Parse JSON refusing any number with a fraction (and, unless ``ints``, any number at all)."""

    def refuse(s: str) -> Any:
        raise AssertionError(f"a JSON number {s} in a money document")

    return json.loads(text, parse_float=refuse, parse_int=int if ints else refuse)


def decimals(value: Any, path: str = "$") -> dict[str, Decimal]:
    """Every Decimal in a model dump, by path."""
    found: dict[str, Decimal] = {}
    if isinstance(value, Decimal):
        found[path] = value
    elif isinstance(value, dict):
        for k, v in value.items():
            found |= decimals(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found |= decimals(v, f"{path}[{i}]")
    return found


# --- idempotency ---


async def test_settling_twice_returns_the_same_stored_statement(db: Database):
    region, tid = await new_region(db), ticket()
    env = ActivityEnvironment()
    first = await env.run(settle_ticket, settle_input(region, tid))
    again = await env.run(settle_ticket, settle_input(region, tid))
    assert first == again
    assert first.model_dump(mode="json") == again.model_dump(mode="json")
    assert (first.kind, first.ticket_version, first.currency, first.rules_version) == (
        SettlementKind.FINAL,
        1,
        "CNY",
        "1",
    )
    # 95 min: base 80 + 1.25 h × 120 = 230; urban +46; fan 185; travel 14 km × 2.5 = 35; 6 % VAT on 496.
    assert first.statement.totals.net == Decimal("496.00") and first.total == Decimal("525.76")
    assert str(first.total) == "525.76" and first.statement.reference == tid
    assert sum(first.statement.split.values()) == first.total
    stored = await rows(db, tid)
    assert len(stored) == 1 and stored[0].id == first.statement_id
    assert stored[0].statement == first.statement.model_dump(mode="json")


async def test_a_retry_after_the_commit_returns_the_stored_statement_and_prices_nothing(db: Database, monkeypatch):
    region, tid = await new_region(db), ticket()
    inp = settle_input(region, tid, budget=Decimal("500"))
    env = ActivityEnvironment()
    real_result = settlement.result_from_row
    crashes = {"left": 1}

    def crash_after_commit(row: StatementRow) -> SettleResult:
        if crashes["left"]:
            crashes["left"] -= 1
            raise ConnectionError("worker lost before the reply")  # the transaction has committed
        return real_result(row)

    monkeypatch.setattr(settlement, "result_from_row", crash_after_commit)
    with pytest.raises(ConnectionError):
        await env.run(settle_ticket, inp)
    assert len(await rows(db, tid)) == 1  # committed before the crash

    # Meanwhile finance publishes new prices; the retry must not see them: nothing is priced again.
    await publish(db, rules_for(region, version="2", tax={"name": "VAT", "mode": "exclusive", "percent": "13"}))

    def must_not_price(*_a: Any) -> Statement:
        raise AssertionError("a retry priced the ticket again")

    monkeypatch.setattr(settlement, "price_ticket", must_not_price)
    retry = await env.run(settle_ticket, inp)
    again = await env.run(settle_ticket, inp)
    assert retry == again and retry.rules_version == "1" and retry.total == Decimal("525.76")
    assert retry.over_budget and retry.budget == Decimal("500.00")
    stored = await rows(db, tid)
    assert len(stored) == 1 and stored[0].id == retry.statement_id
    assert retry.statement == Statement.model_validate(stored[0].statement)


async def test_concurrent_attempts_store_one_statement_and_all_answer_it(db: Database):
    import asyncio

    region, tid = await new_region(db), ticket()
    results = await asyncio.gather(*[settlement.settle(db, settle_input(region, tid)) for _ in range(6)])
    assert all(r == results[0] for r in results)
    assert len(await rows(db, tid)) == 1


# --- exact money ---


async def test_money_survives_the_database_and_temporal_exactly(db: Database):
    # Ties everywhere: 1.25 h × 0.1 = 0.125, 3 × 3.3333…; inclusive tax extracts 13/113 of each line.
    rules = await region_with(
        db,
        services=[
            {
                "strategy": "hourly",
                "code": "REPAIR-ONSITE",
                "base_fee": "0.005",
                "hourly_rate": "0.1",
                "increment_minutes": 15,
            },
            {"strategy": "flat", "code": "INSTALL", "price": "3.333333"},
        ],
        parts=[{"sku": "FAN-120", "price": "10.125"}, {"sku": "SEAL-D40", "price": "0.045"}],
        tax={"name": "VAT", "mode": "inclusive", "percent": "13"},
        split=[
            {"party": "platform", "share": "0.3333"},
            {"party": "provider", "share": "0.3333"},
            {"party": "engineer", "share": "0.3334"},
        ],
    )
    region, tid = rules.region, ticket()
    request = items(
        services=[{"code": "REPAIR-ONSITE", "minutes": 75}, {"code": "INSTALL", "quantity": "3"}],
        parts=[{"sku": "FAN-120", "quantity": "3"}, {"sku": "SEAL-D40", "quantity": "1.5"}],
        conditions=["urban"],
        travel_km="0",
    )
    result = await settlement.settle(
        db,
        settle_input(region, tid, request=request, budget=Decimal("12.3456"), budget_tolerance_percent=Decimal("2.5")),
    )
    expected = settlement.price_ticket(rules, settle_input(region, tid, request=request))
    assert result.statement == expected
    assert decimals(result.statement.model_dump()) == decimals(expected.model_dump())
    assert {p: str(d) for p, d in decimals(result.statement.model_dump()).items()} == {
        p: str(d) for p, d in decimals(expected.model_dump()).items()
    }  # same digits, not only equal values

    row = (await rows(db, tid))[0]
    json_sql = "statement::text" if db.engine.dialect.name == "postgresql" else "statement"
    async with db.engine.connect() as conn:
        raw = (
            await conn.execute(
                sa.text(
                    f"SELECT {json_sql}, total, net, tax, budget, budget_tolerance_percent"
                    " FROM statement WHERE id = :id"
                ),
                {"id": row.id},
            )
        ).one()
    stored = strict_json(raw[0])  # the statement has no JSON number at all: every amount is a string
    assert Statement.model_validate(stored) == expected
    for value in raw[1:]:
        assert isinstance(value, Decimal | str) and not isinstance(value, float)
    assert [Decimal(v) for v in raw[1:4]] == [expected.totals.total, expected.totals.net, expected.totals.tax]
    assert (Decimal(raw[4]), Decimal(raw[5])) == (Decimal("12.3456"), Decimal("2.5"))
    assert result.budget == Decimal("12.3456") and str(result.budget) == "12.3456"
    assert result.budget_limit == Decimal("12.654240")  # 12.3456 × 1.025, exactly

    # Through Temporal's converter: the same result, every amount a JSON string.
    converter = pydantic_data_converter.payload_converter
    payload = converter.to_payloads([result])[0]
    no_float(strict_json(payload.data.decode(), ints=True))
    assert converter.from_payloads([payload], [SettleResult])[0] == result
    inp_payload = converter.to_payloads([settle_input(region, tid, budget=Decimal("1.5"))])[0]
    no_float(strict_json(inp_payload.data.decode(), ints=True))  # ints: version, minutes, referrals


def test_budget_and_amounts_refuse_floats():
    with pytest.raises(ValueError, match="float"):
        settle_input("east", ticket(), budget=1000.5)
    with pytest.raises(ValueError):
        settle_input("east", ticket(), budget=Decimal("1.00001"))  # NUMERIC(18, 4)
    with pytest.raises(ValueError, match="float"):
        items(travel_km=2.5)


# --- pre-settlement lock, difference, budget ---


async def test_pre_settlement_is_locked_and_the_final_reports_the_difference(db: Database):
    region, tid = await new_region(db), ticket()
    quote = items(services=[{"code": "REPAIR-ONSITE", "minutes": 60}], parts=[], travel_km="0", conditions=[])
    pre = await settlement.settle(db, settle_input(region, tid, kind="pre_settlement", request=quote))
    # 80 + 0.5 h × 120 = 140 → minimum charge 150; + 6 % = 159.00
    assert (pre.kind, pre.total, pre.pre_settlement_total, pre.difference) == (
        SettlementKind.PRE_SETTLEMENT,
        Decimal("159.00"),
        None,
        None,
    )
    # Locked: asking again with other work returns the agreed amount.
    again = await settlement.settle(db, settle_input(region, tid, kind="pre_settlement", request=items()))
    assert again == pre

    final = await settlement.settle(db, settle_input(region, tid))
    assert final.kind is SettlementKind.FINAL and final.statement_id != pre.statement_id
    assert final.pre_settlement_total == Decimal("159.00") and str(final.pre_settlement_total) == "159.00"
    assert final.difference == final.total - pre.total == Decimal("366.76") and final.exceeds_pre_settlement
    assert await settlement.settle(db, settle_input(region, tid)) == final
    assert sorted(r.status for r in await rows(db, tid)) == ["final", "pre_settlement"]

    # A re-settlement (version 2) is checked against the latest pre-settlement up to its version.
    v2 = await settlement.settle(db, settle_input(region, tid, ticket_version=2, request=quote))
    assert (v2.ticket_version, v2.difference, v2.exceeds_pre_settlement) == (2, Decimal("0.00"), False)
    # A final below the agreed amount: a negative difference.
    tid2 = ticket()
    await settlement.settle(db, settle_input(region, tid2, kind="pre_settlement"))
    lower = await settlement.settle(db, settle_input(region, tid2, request=quote))
    assert lower.difference == Decimal("-366.76") and not lower.exceeds_pre_settlement
    # No pre-settlement: nothing to compare.
    alone = await settlement.settle(db, settle_input(region, ticket()))
    assert (alone.pre_settlement_total, alone.difference, alone.exceeds_pre_settlement) == (None, None, False)


@pytest.mark.parametrize(
    ("budget", "tolerance", "over", "limit"),
    [
        (None, "0", False, None),
        ("600", "0", False, "600.00"),
        ("500", "0", True, "500.00"),
        ("500", "5.152", False, "525.76"),  # total == limit exactly: not over
        ("500", "5.151", True, "525.755"),
        ("525.75", "0", True, "525.75"),
        ("525.76", "0", False, "525.76"),
    ],
)
async def test_over_budget_when_the_total_exceeds_budget_plus_tolerance(db: Database, budget, tolerance, over, limit):
    region, tid = await new_region(db), ticket()
    result = await settlement.settle(
        db, settle_input(region, tid, budget=budget and Decimal(budget), budget_tolerance_percent=Decimal(tolerance))
    )
    assert result.total == Decimal("525.76")
    assert result.over_budget is over and (await rows(db, tid))[0].over_budget is over
    assert result.budget_limit == (limit and Decimal(limit))
    if over:
        assert result.budget_reason
        assert f"total 525.76 CNY exceeds the budget {Decimal(budget):.2f} CNY" in result.budget_reason
        assert (f"+ {tolerance} % tolerance" in result.budget_reason) is (tolerance != "0")
    else:
        assert result.budget_reason is None


# --- errors ---


async def test_pricing_errors_are_non_retryable_and_store_nothing(db: Database):
    region = await new_region(db)
    env = ActivityEnvironment()
    cases = [
        (items(parts=[{"sku": "NO-SUCH", "quantity": "1"}]), "Pricing:unknown_part", "request.parts[0].sku"),
        (items(services=[{"code": "REPAIR-ONSITE"}]), "Pricing:bad_quantity", "request.services[0].minutes"),
        (items(currency="USD"), "Pricing:missing_rate", None),
        (PricingRequest(region="south", currency="CNY"), "Pricing:region_mismatch", "request.region"),
    ]
    for request, error_type, path in cases:
        tid = ticket()
        with pytest.raises(ApplicationError) as info:
            await env.run(settle_ticket, settle_input(region, tid, request=request))
        err = info.value
        assert (err.type, err.non_retryable) == (error_type, True), err
        assert err.details[0]["code"] == error_type.removeprefix("Pricing:")
        if path:
            assert err.details[0]["path"] == path
        assert await rows(db, tid) == []

    tid = ticket()
    with pytest.raises(ApplicationError) as info:
        await env.run(settle_ticket, settle_input(f"none{uid().lower()}", tid))
    assert (info.value.type, info.value.non_retryable) == (settlement.NO_PRICE_RULES, True)
    assert await rows(db, tid) == []


async def test_a_ready_pricing_request_and_a_rate_snapshot(db: Database):
    region, tid = await new_region(db), ticket()
    taken = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    snapshot = {"taken_at": taken, "source": "test", "rates": [{"base": "CNY", "quote": "USD", "rate": "0.1383"}]}
    req = PricingRequest(region=region, currency="USD", services=[{"code": "INSTALL"}])
    # A dict with a region is a PricingRequest; the input's snapshot is used and the ticket is the reference.
    inp = SettleInput.model_validate(
        {"ticket_id": tid, "region": region, "request": req.model_dump(mode="json"), "rates": snapshot}
    )
    assert isinstance(inp.request, PricingRequest)
    result = await settlement.settle(db, inp)
    # 299 CNY × 0.1383 = 41.3517 → 41.35 + 6 % (2.48) = 43.83 USD
    assert (result.currency, result.total, result.statement.reference) == ("USD", Decimal("43.83"), tid)
    assert result.statement.rates_taken_at == taken and result.statement.price_list_currency == "CNY"


async def test_demo_pricing_loads_once_and_prices_the_preset_services(db: Database):
    first = await demo.load_pricing(db)
    second = await demo.load_pricing(db)
    assert {(r, v) for r, v, _ in first} == {("east", DEMO_VERSION), ("south", DEMO_VERSION)} and first == second
    for rules in DEMO_PRICING.values():
        book = compile_rules(rules)
        assert book.rules.tax.percent == Decimal("6") and book.rules.currency == "CNY"
        assert [s.party for s in rules.split] == ["platform", "provider", "engineer"]
    async with db.session() as s:
        count = len((await s.exec(select(PriceRules).where(PriceRules.version == DEMO_VERSION))).all())
    assert count == 2
    if dict((r, a) for r, _, a in first)["east"]:  # unless someone published other east rules first
        result = await settlement.settle(db, settle_input("east", ticket()))
        assert result.rules_version == DEMO_VERSION and result.total == Decimal("525.76")


# --- through a worker, by name, with the pydantic converter ---


@workflow.defn(sandboxed=False)
class SettleTwice:
    @workflow.run
    async def run(self, inp: SettleInput) -> list[Any]:
        opts: dict[str, Any] = {
            "start_to_close_timeout": timedelta(seconds=30),
            "retry_policy": RetryPolicy(maximum_attempts=3),
        }
        first = await workflow.execute_activity("settlement.settle", inp, result_type=SettleResult, **opts)
        second = await workflow.execute_activity("settlement.settle", inp, result_type=SettleResult, **opts)
        bad = inp.model_copy(
            update={"ticket_id": inp.ticket_id + "X", "request": SettleItems(parts=[{"sku": "NOPE", "quantity": "1"}])}
        )
        try:
            await workflow.execute_activity("settlement.settle", bad, result_type=SettleResult, **opts)
            error = None
        except ActivityError as exc:
            cause = exc.cause
            error = f"{cause.type} {cause.non_retryable}" if isinstance(cause, ApplicationError) else repr(cause)
        return [first, second, error]


async def test_settle_by_name_through_a_worker(db: Database, devserver: WorkflowEnvironment):
    region, tid = await new_region(db), ticket()
    queue = f"settle-{uid()}"
    async with Worker(devserver.client, task_queue=queue, workflows=[SettleTwice], activities=[settle_ticket]):
        first, second, error = await devserver.client.execute_workflow(
            SettleTwice.run,
            settle_input(region, tid, budget=Decimal("500")),
            id=f"settle-{tid}",
            task_queue=queue,
            result_type=list,
        )
    first, second = SettleResult.model_validate(first), SettleResult.model_validate(second)
    assert first == second and first.total == Decimal("525.76") and first.over_budget
    assert error == "Pricing:unknown_part True"
    assert len(await rows(db, tid)) == 1


# --- coverage and quoted amounts (issue #11; the ticket's facts: test_pricing_inputs.py) ---


async def test_a_quoted_repair_cost_and_a_covered_part_are_stored_exactly(db: Database):
    region, tid = await new_region(db), ticket()
    request = PricingRequest(
        region=region,
        currency="CNY",
        services=[{"code": "REPAIR-ONSITE", "minutes": 95}, {"code": "REPAIR-COST", "amount": "380.50"}],
        parts=[{"sku": "FAN-120", "quantity": "1"}],
        coverage=[{"name": "warranty until 2027-03-31", "covers": "parts"}],
    )
    result = await settlement.settle(db, settle_input(region, tid, request=request))
    # 380.50 + 80 + 1.25 h × 120 = 610.50; the fan (185.00) is the warranty's; 6 % VAT 36.63
    assert (result.statement.totals.net, result.total) == (Decimal("610.50"), Decimal("647.13"))
    quote, fan = result.statement.lines[0], result.statement.lines[-1]
    assert (quote.code, quote.amount, quote.rule) == ("REPAIR-COST", Decimal("380.50"), "services.REPAIR-COST.quoted")
    assert (fan.amount, fan.coverage, fan.covered_amount, fan.list_unit_price) == (
        Decimal("0.00"),
        "warranty until 2027-03-31",
        Decimal("185.00"),
        Decimal("185.00"),
    )
    assert result.statement.inputs is None  # no context: nothing was looked up
    stored = (await rows(db, tid))[0].statement
    assert stored["lines"][-1]["covered_amount"] == "185.00" and stored["lines"][-1]["coverage"].startswith("warranty")
    converter = pydantic_data_converter.payload_converter
    payload = converter.to_payloads([result])[0]
    no_float(strict_json(payload.data.decode(), ints=True))
    assert converter.from_payloads([payload], [SettleResult])[0] == result


async def test_an_amount_on_a_flat_service_is_a_pricing_error(db: Database):
    region, tid = await new_region(db), ticket()
    with pytest.raises(ApplicationError) as info:
        await settlement.settle(
            db, settle_input(region, tid, request=items(services=[{"code": "INSTALL", "amount": "1"}]))
        )
    assert (info.value.type, info.value.non_retryable) == ("Pricing:bad_amount", True)
    assert info.value.details[0]["path"] == "request.services[0].amount"
    with pytest.raises(ApplicationError) as info:
        await settlement.settle(db, settle_input(region, tid, request=items(services=[{"code": "REPAIR-COST"}])))
    assert info.value.type == "Pricing:bad_amount" and await rows(db, tid) == []


async def test_a_newer_demo_version_supersedes_an_older_one_but_never_finances(db: Database):
    """An existing .data database with the first demo rules (no REPAIR-COST) gets the new ones on
    the next load; rules finance published stay active."""
    await demo.load_pricing(db)
    async with db.session() as s:
        current = (await s.exec(select(PriceRules).where(PriceRules.region == "south", PriceRules.active))).one()
        if current.version != DEMO_VERSION:
            pytest.skip("someone published other south rules in this database")
        current.active = False
        s.add(current)
        await s.flush()
        old = PriceRules(
            region="south",
            version="demo-0",
            rules=current.rules,
            active=True,
            created_by="demo",
            created_at=datetime.now(UTC),
        )
        s.add(old)
        await s.commit()
    loaded = dict((r, (v, a)) for r, v, a in await demo.load_pricing(db))
    assert loaded["south"] == (DEMO_VERSION, True)
    async with db.session() as s:
        assert not (await s.get(PriceRules, old.id)).active
        # finance's own version is never superseded by a demo load
        mine = (await s.exec(select(PriceRules).where(PriceRules.region == "south", PriceRules.active))).one()
        mine.active, mine.created_by = False, mine.created_by
        s.add(mine)
        await s.flush()
        theirs = PriceRules(
            region="south",
            version="fin-7",
            rules=current.rules,
            active=True,
            created_by="fin-qian",
            created_at=datetime.now(UTC),
        )
        s.add(theirs)
        await s.commit()
    try:
        loaded = dict((r, (v, a)) for r, v, a in await demo.load_pricing(db))
        assert loaded["south"] == (DEMO_VERSION, False)
        async with db.session() as s:
            assert (await s.get(PriceRules, theirs.id)).active
    finally:  # leave the database as the other tests expect it
        async with db.session() as s:
            t = await s.get(PriceRules, theirs.id)
            t.active = False
            s.add(t)
            await s.flush()
            m = (
                await s.exec(select(PriceRules).where(PriceRules.region == "south", PriceRules.version == DEMO_VERSION))
            ).one()
            m.active = True
            s.add(m)
            await s.commit()
