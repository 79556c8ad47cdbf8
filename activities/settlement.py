"""Settlement: price a finished (or about to start) ticket and store its statement, exactly once.

``settlement.settle`` (the workflow's ``settle`` node calls it):

1. ``(ticket_id, ticket_version, kind)`` is the idempotency key. If a statement with that key is
   stored, it is returned as stored: nothing is priced again, not even when the rules, the
   request or the customer changed since (a retry after the commit, a replayed workflow, a
   duplicate call).
2. Otherwise the region's **active** price rules are loaded; with ``inp.context`` the ticket's
   facts are looked up (``look_up``: customer, asset and coverage, travel distance, calendar,
   exchange rate) and merged into the request (``pricing_request``); the pure engine
   (``domain.pricing``) prices it and the statement records what it used (``inputs``). A
   ``PricingError`` becomes a non-retryable ``ApplicationError(type="Pricing:<code>")``.
3. The budget check: over budget when ``total > budget × (1 + tolerance / 100)``.
4. A final settlement looks up the ticket's pre-settlement (same version, else the latest
   earlier one) and records its total; the result reports the difference.
5. ``INSERT … ON CONFLICT DO NOTHING`` on the key, then the row is read back: concurrent
   attempts all answer with the one row that won.

The answer is always rebuilt from the stored row (``result_from_row``), so the first attempt
and any retry return identical results. See docs/settlement.md.
"""

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.resources import database
from domain.pricing import PricingError, PricingErrorCode, compile_rules, price
from models.db import Database
from models.pricing import (
    ExchangeRate,
    PricingInputs,
    PricingRequest,
    RateSnapshot,
    RegionPricing,
    Statement,
)
from models.settlement import SettleInput, SettleItems, SettlementKind, SettleResult
from models.settlement_tables import StatementRow
from store import pricing_inputs, statements
from store.pricing_inputs import CustomerFacts, TicketFacts
from store.statements import budget_check, budget_reason, in_currency, plain

NO_PRICE_RULES = "Settlement:NoPriceRules"
AMOUNT_TOO_LARGE = "Settlement:AmountTooLarge"
PRICING_ERROR_PREFIX = "Pricing:"

_MAX_AMOUNT = Decimal(10) ** 14  # NUMERIC(18, 4): 14 digits before the point
RATE_SOURCE = "exchange_rate table"


@activity.defn(name="settlement.settle")
async def settle_ticket(inp: SettleInput) -> SettleResult:
    """Price a ticket with its region's active rules and store the statement once per
    (ticket, version, kind); a retry returns the stored statement."""
    result = await settle(database(), inp)
    activity.logger.info(
        "statement %s for %s v%s (%s): %s %s%s",
        result.statement_id,
        inp.ticket_id,
        inp.ticket_version,
        result.kind,
        result.total,
        result.currency,
        " over budget" if result.over_budget else "",
    )
    return result


async def settle(db: Database, inp: SettleInput) -> SettleResult:
    async with db.session() as session:
        stored = await statements.find(session, inp.ticket_id, inp.ticket_version, inp.kind)
        if stored is not None:
            return result_from_row(stored)
        rules_row = await statements.active_rules(session, inp.region)
        if rules_row is None:
            raise ApplicationError(
                f"region {inp.region!r} has no active price rules (PUT /pricing/{inp.region})",
                {"region": inp.region},
                type=NO_PRICE_RULES,
                non_retryable=True,
            )
        rules = RegionPricing.model_validate(rules_row.rules)
        facts = await look_up(session, inp, rules, datetime.now(UTC)) if inp.context is not None else None
        statement = price_ticket(rules, inp, facts)
        totals = statement.totals
        if max(abs(totals.total), abs(totals.net), abs(totals.tax)) >= _MAX_AMOUNT:
            raise ApplicationError(
                f"total {totals.total} {statement.currency} is too large to store",
                type=AMOUNT_TOO_LARGE,
                non_retryable=True,
            )
        pre = None
        if inp.kind is SettlementKind.FINAL:
            pre = await statements.pre_settlement_for(session, inp.ticket_id, inp.ticket_version)
        over, _ = budget_check(totals.total, inp.budget, inp.budget_tolerance_percent)
        await statements.insert_once(
            session,
            {
                "ticket_id": inp.ticket_id,
                "ticket_version": inp.ticket_version,
                "status": inp.kind.value,
                "region": inp.region,
                "ticket_type": inp.ticket_type,
                "rules_version": statement.rules_version,
                "currency": statement.currency,
                "net": totals.net,
                "tax": totals.tax,
                "total": totals.total,
                "statement": statement.model_dump(mode="json"),
                "pre_settlement_total": pre.total if pre is not None else None,
                "over_budget": over,
                "budget": inp.budget,
                "budget_tolerance_percent": inp.budget_tolerance_percent if inp.budget is not None else None,
                "created_at": datetime.now(UTC),
            },
        )
        await session.commit()
        stored = await statements.find(session, inp.ticket_id, inp.ticket_version, inp.kind)
    if stored is None:  # pragma: no cover - the row was just inserted or already there
        raise RuntimeError(f"statement of {inp.ticket_id} v{inp.ticket_version} {inp.kind} vanished")
    return result_from_row(stored)


def price_ticket(rules: RegionPricing, inp: SettleInput, facts: TicketFacts | None = None) -> Statement:
    """The pure part: the pricing request for ``inp`` (and the ticket's ``facts``, when looked
    up) priced with ``rules``; with facts, the statement records the inputs it used."""
    try:
        request = pricing_request(inp, rules, facts)
        statement = price(compile_rules(rules), request)
    except PricingError as exc:
        raise pricing_failure(exc) from exc
    if facts is None:
        return statement
    return statement.model_copy(update={"inputs": inputs_used(request, rules, facts)})


def pricing_request(inp: SettleInput, rules: RegionPricing, facts: TicketFacts | None = None) -> PricingRequest:
    """The request as the node sent it, completed with the ticket's facts. What the node sent
    explicitly wins: a member level, referrals > 0, a travel distance > 0, a currency, a rate
    snapshot, coverage; the calendar's conditions are added to the node's."""
    req = inp.request
    if isinstance(req, SettleItems):
        request = PricingRequest(
            reference=inp.ticket_id,
            region=inp.region,
            currency=_billing_currency(inp, rules, facts.customer if facts is not None else None),
            services=req.services,
            parts=req.parts,
            conditions=req.conditions,
            travel_km=req.travel_km,
            member_level=req.member_level,
            referrals=req.referrals,
            rates=inp.rates,
        )
    else:
        update: dict[str, object] = {}
        if req.reference is None:
            update["reference"] = inp.ticket_id
        if inp.rates is not None:
            update["rates"] = inp.rates
        request = req.model_copy(update=update) if update else req
    return request if facts is None else _with_facts(request, rules, facts)


def _with_facts(request: PricingRequest, rules: RegionPricing, facts: TicketFacts) -> PricingRequest:
    fields = dict(request)
    customer = facts.customer
    if request.member_level is None and customer is not None and customer.member_level in _levels(rules):
        fields["member_level"] = customer.member_level
    if request.referrals == 0 and customer is not None:
        fields["referrals"] = customer.referrals
    if request.travel_km == 0 and facts.travel_km is not None:
        fields["travel_km"] = facts.travel_km
    fields["conditions"] = (*request.conditions, *(c for c in facts.conditions if c not in request.conditions))
    if not request.coverage:
        fields["coverage"] = facts.coverage
    if request.rates is None:
        fields["rates"] = facts.rates
    return PricingRequest(**fields)


def _levels(rules: RegionPricing) -> set[str]:
    return {m.level for m in rules.discounts.member_levels}


def inputs_used(request: PricingRequest, rules: RegionPricing, facts: TicketFacts) -> PricingInputs:
    """What the statement was priced with, and why something the ticket knows was left out."""
    notes = list(facts.notes)
    level = facts.customer.member_level if facts.customer is not None else None
    if level is not None and request.member_level is None and level not in _levels(rules):
        notes.append(f"member level {level!r} has no discount in region {rules.region!r}'s price rules")
    converted = request.currency != rules.currency and request.rates is not None
    return PricingInputs(
        customer_id=facts.customer.id if facts.customer is not None else None,
        asset_id=facts.context.asset_id,
        engineer_id=facts.context.engineer_id,
        worked_at=facts.context.worked_at,
        member_level=request.member_level,
        referrals=request.referrals,
        travel_km=request.travel_km,
        conditions=request.conditions,
        coverage=request.coverage,
        currency=request.currency,
        rates_source=request.rates.source if converted and request.rates is not None else None,
        notes=tuple(notes),
    )


def pricing_failure(exc: PricingError) -> ApplicationError:
    code = str(exc.code)
    return ApplicationError(
        str(exc),
        {"code": code, "message": exc.message, "path": exc.path},
        type=f"{PRICING_ERROR_PREFIX}{code}",
        non_retryable=True,
    )


# --- the ticket's facts (SettleInput.context) ---


async def look_up(session: AsyncSession, inp: SettleInput, rules: RegionPricing, now: datetime) -> TicketFacts:
    """The ticket's pricing facts (``store.pricing_inputs.gather``) and, when the billing currency
    is not the price list's and no snapshot was sent, the rate table's newest rate for the pair."""
    assert inp.context is not None
    facts = await pricing_inputs.gather(session, inp.region, inp.context, now)
    currency = _billing_currency(inp, rules, facts.customer)
    if currency == rules.currency or inp.rates is not None or _request_rates(inp) is not None:
        return facts
    return replace(facts, rates=await _rate_snapshot(session, rules.currency, currency, now))


def _request_rates(inp: SettleInput) -> RateSnapshot | None:
    return inp.request.rates if isinstance(inp.request, PricingRequest) else None


def _billing_currency(inp: SettleInput, rules: RegionPricing, customer: CustomerFacts | None) -> str:
    """The request's currency; for items without one, the customer's, else the price list's."""
    req = inp.request
    if isinstance(req, PricingRequest):
        return req.currency
    return req.currency or (customer.billing_currency if customer is not None else None) or rules.currency


async def _rate_snapshot(session: AsyncSession, base: str, quote: str, now: datetime) -> RateSnapshot:
    """The newest ``base`` → ``quote`` rate of the rate table, as a one-rate snapshot taken now."""
    row = await pricing_inputs.latest_rate(session, base, quote, now)
    if row is None:
        message = f"the exchange_rate table has no {base}→{quote} rate as of {now.isoformat()}"
        raise pricing_failure(PricingError(PricingErrorCode.MISSING_RATE, message, "exchange_rate"))
    source = f"{RATE_SOURCE}, {base}→{quote} as of {row.as_of.isoformat()}" + (f" ({row.source})" if row.source else "")
    rate = ExchangeRate(base=base, quote=quote, rate=row.rate.normalize())  # NUMERIC(20, 10): no trailing zeros
    return RateSnapshot(taken_at=now, source=source, rates=(rate,))


# --- the answer, always from the stored row ---


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
        budget_tolerance_percent=plain(row.budget_tolerance_percent)
        if row.budget_tolerance_percent is not None
        else None,
        budget_limit=in_currency(limit, cur),
        budget_reason=budget_reason(row, limit),
        pre_settlement_total=in_currency(row.pre_settlement_total, cur),
        difference=in_currency(difference, cur),
        exceeds_pre_settlement=difference is not None and difference > 0,
        statement=Statement.model_validate(row.statement),
    )
