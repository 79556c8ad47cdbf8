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
from decimal import Decimal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.resources import database
from domain.pricing import PricingError, compile_rules, price
from models.db import Database
from models.pricing import PricingRequest, RegionPricing, Statement
from models.settlement import SettleInput, SettleItems, SettlementKind, SettleResult
from models.settlement_tables import StatementRow
from store import statements
from store.statements import budget_check, budget_reason, in_currency, plain

NO_PRICE_RULES = "Settlement:NoPriceRules"
AMOUNT_TOO_LARGE = "Settlement:AmountTooLarge"
PRICING_ERROR_PREFIX = "Pricing:"

_MAX_AMOUNT = Decimal(10) ** 14  # NUMERIC(18, 4): 14 digits before the point


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
        statement = price_ticket(RegionPricing.model_validate(rules_row.rules), inp)
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
        str(exc),
        {"code": code, "message": exc.message, "path": exc.path},
        type=f"{PRICING_ERROR_PREFIX}{code}",
        non_retryable=True,
    )


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
