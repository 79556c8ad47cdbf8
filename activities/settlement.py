"""Settlement: price a finished (or about to start) ticket and store its statement, exactly once.

``settlement.settle`` (the workflow's ``settle`` node calls it):

1. ``(ticket_id, ticket_version, kind)`` is the idempotency key. If a statement with that key is
   stored, it is returned as stored: nothing is priced again, not even when the rules or the
   request changed since (a retry after the commit, a replayed workflow, a duplicate call).
2. Otherwise the region's **active** price rules are loaded and the ticket is priced by the
   pure engine (``domain.pricing``); a ``PricingError`` becomes a non-retryable
   ``ApplicationError(type="Pricing:<code>")``.
3. The budget check: over budget when ``total > budget × (1 + tolerance / 100)``.
4. A final settlement looks up the ticket's pre-settlement (same version, else the latest
   earlier one) and records its total; the result reports the difference.
5. ``INSERT … ON CONFLICT DO NOTHING`` on the key, then the row is read back: concurrent
   attempts all answer with the one row that won.

The answer is always rebuilt from the stored row (``result_from_row``), so the first attempt
and any retry return identical results. See docs/settlement.md.
"""

from datetime import UTC, datetime
from decimal import Decimal, localcontext

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.resources import database
from domain.pricing import PricingError, compile_rules, price
from models.db import Database, upsert_statement
from models.pricing import CURRENCIES, PricingRequest, RegionPricing, Statement
from models.settlement import PriceRules, SettleInput, SettleItems, SettlementKind, SettleResult, StatementRow

NO_PRICE_RULES = "Settlement:NoPriceRules"
AMOUNT_TOO_LARGE = "Settlement:AmountTooLarge"
PRICING_ERROR_PREFIX = "Pricing:"

_STATEMENT = StatementRow.__table__
_MAX_AMOUNT = Decimal(10) ** 14  # NUMERIC(18, 4): 14 digits before the point
_KEY = ["ticket_id", "ticket_version", "status"]


@activity.defn(name="settlement.settle")
async def settle_ticket(inp: SettleInput) -> SettleResult:
    """Price a ticket with its region's active rules and store the statement once per
    (ticket, version, kind); a retry returns the stored statement."""
    result = await settle(database(), inp)
    activity.logger.info(
        "statement %s for %s v%s (%s): %s %s%s", result.statement_id, inp.ticket_id, inp.ticket_version,
        result.kind, result.total, result.currency, " over budget" if result.over_budget else "",
    )
    return result


async def settle(db: Database, inp: SettleInput) -> SettleResult:
    async with db.session() as session:
        stored = await find_statement(session, inp.ticket_id, inp.ticket_version, inp.kind)
        if stored is not None:
            return result_from_row(stored)
        rules_row = await active_rules(session, inp.region)
        if rules_row is None:
            raise ApplicationError(
                f"region {inp.region!r} has no active price rules (PUT /pricing/{inp.region})",
                {"region": inp.region}, type=NO_PRICE_RULES, non_retryable=True,
            )
        statement = price_ticket(RegionPricing.model_validate(rules_row.rules), inp)
        totals = statement.totals
        if max(abs(totals.total), abs(totals.net), abs(totals.tax)) >= _MAX_AMOUNT:
            raise ApplicationError(f"total {totals.total} {statement.currency} is too large to store",
                                   type=AMOUNT_TOO_LARGE, non_retryable=True)
        pre = None
        if inp.kind is SettlementKind.FINAL:
            pre = await pre_settlement_for(session, inp.ticket_id, inp.ticket_version)
        over, _ = budget_check(totals.total, inp.budget, inp.budget_tolerance_percent)
        insert = upsert_statement(db.engine.dialect.name, _STATEMENT).values(
            ticket_id=inp.ticket_id,
            ticket_version=inp.ticket_version,
            status=inp.kind.value,
            region=inp.region,
            ticket_type=inp.ticket_type,
            rules_version=statement.rules_version,
            currency=statement.currency,
            net=totals.net,
            tax=totals.tax,
            total=totals.total,
            statement=statement.model_dump(mode="json"),
            pre_settlement_total=pre.total if pre is not None else None,
            over_budget=over,
            budget=inp.budget,
            budget_tolerance_percent=inp.budget_tolerance_percent if inp.budget is not None else None,
            created_at=datetime.now(UTC),
        )
        await session.exec(insert.on_conflict_do_nothing(index_elements=_KEY))  # type: ignore[call-overload]
        await session.commit()
        stored = await find_statement(session, inp.ticket_id, inp.ticket_version, inp.kind)
    if stored is None:  # pragma: no cover - the row was just inserted or already there
        raise RuntimeError(f"statement of {inp.ticket_id} v{inp.ticket_version} {inp.kind} vanished")
    return result_from_row(stored)


def price_ticket(rules: RegionPricing, inp: SettleInput) -> Statement:
    """The pure part: the pricing request for ``inp`` priced with ``rules``."""
    try:
        return price(compile_rules(rules), pricing_request(inp, rules))
    except PricingError as exc:
        raise pricing_failure(exc) from exc


def pricing_request(inp: SettleInput, rules: RegionPricing) -> PricingRequest:
    req = inp.request
    if isinstance(req, SettleItems):
        return PricingRequest(
            reference=inp.ticket_id,
            region=inp.region,
            currency=req.currency or rules.currency,
            services=req.services,
            parts=req.parts,
            conditions=req.conditions,
            travel_km=req.travel_km,
            member_level=req.member_level,
            referrals=req.referrals,
            rates=inp.rates,
        )
    update: dict[str, object] = {}
    if req.reference is None:
        update["reference"] = inp.ticket_id
    if inp.rates is not None:
        update["rates"] = inp.rates
    return req.model_copy(update=update) if update else req


def pricing_failure(exc: PricingError) -> ApplicationError:
    code = str(exc.code)
    return ApplicationError(
        str(exc), {"code": code, "message": exc.message, "path": exc.path},
        type=f"{PRICING_ERROR_PREFIX}{code}", non_retryable=True,
    )


def budget_check(total: Decimal, budget: Decimal | None, tolerance_percent: Decimal | None) -> tuple[bool, Decimal | None]:
    """``(over, limit)``: over when ``total > budget × (1 + tolerance / 100)``, computed exactly."""
    if budget is None:
        return False, None
    with localcontext() as ctx:
        ctx.prec = 64  # budget ≤ 18 digits, tolerance ≤ 9: the product is exact
        limit = budget * (100 + (tolerance_percent or 0)) / 100
    return total > limit, limit


# --- reads shared with the API ---


async def find_statement(session: AsyncSession, ticket_id: str, version: int, kind: SettlementKind) -> StatementRow | None:
    q = select(StatementRow).where(
        StatementRow.ticket_id == ticket_id, StatementRow.ticket_version == version, StatementRow.status == kind.value
    )
    return (await session.exec(q)).first()


async def pre_settlement_for(session: AsyncSession, ticket_id: str, version: int) -> StatementRow | None:
    """The pre-settlement a final settlement is checked against: the same version's, else the
    latest earlier one."""
    q = (
        select(StatementRow)
        .where(
            StatementRow.ticket_id == ticket_id,
            StatementRow.status == SettlementKind.PRE_SETTLEMENT.value,
            StatementRow.ticket_version <= version,
        )
        .order_by(col(StatementRow.ticket_version).desc())
        .limit(1)
    )
    return (await session.exec(q)).first()


async def active_rules(session: AsyncSession, region: str) -> PriceRules | None:
    q = select(PriceRules).where(PriceRules.region == region, col(PriceRules.active).is_(True))
    return (await session.exec(q)).first()


# --- the answer, always from the stored row ---


def in_currency(value: Decimal | None, currency: str) -> Decimal | None:
    """A stored amount (NUMERIC(18, 4): ``123.5100``) shown at the currency's minor unit
    (``123.51``) when that loses nothing, else without trailing zeros."""
    if value is None:
        return None
    spec = CURRENCIES.get(currency)
    if spec is not None and value == value.quantize(spec.quantum):
        return value.quantize(spec.quantum)
    return plain(value)


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros, never in exponent notation (``10.0000`` → ``10``)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def budget_reason(row: StatementRow, limit: Decimal | None) -> str | None:
    if not row.over_budget or row.budget is None or limit is None:
        return None
    cur = row.currency
    total, budget = in_currency(row.total, cur), in_currency(row.budget, cur)
    tolerance = plain(row.budget_tolerance_percent or Decimal(0))
    allowed = f"the budget {budget} {cur}"
    if tolerance:
        allowed += f" + {tolerance} % tolerance = {in_currency(limit, cur)} {cur}"
    return f"total {total} {cur} exceeds {allowed} by {in_currency(row.total - limit, cur)} {cur}"


def result_from_row(row: StatementRow) -> SettleResult:
    cur = row.currency
    _, limit = budget_check(row.total, row.budget, row.budget_tolerance_percent)
    difference = row.total - row.pre_settlement_total if row.pre_settlement_total is not None else None
    return SettleResult(
        statement_id=row.id or 0,
        ticket_id=row.ticket_id,
        ticket_version=row.ticket_version,
        kind=SettlementKind(row.status),
        region=row.region,
        rules_version=row.rules_version,
        currency=cur,
        total=in_currency(row.total, cur),
        created_at=row.created_at,
        over_budget=row.over_budget,
        budget=in_currency(row.budget, cur),
        budget_tolerance_percent=plain(row.budget_tolerance_percent) if row.budget_tolerance_percent is not None else None,
        budget_limit=in_currency(limit, cur),
        budget_reason=budget_reason(row, limit),
        pre_settlement_total=in_currency(row.pre_settlement_total, cur),
        difference=in_currency(difference, cur),
        exceeds_pre_settlement=difference is not None and difference > 0,
        statement=Statement.model_validate(row.statement),
    )
