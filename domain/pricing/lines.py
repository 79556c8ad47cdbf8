"""Base lines: services by their strategy (flat, hourly, tiered) and parts at list price.

Requested items are priced in code / SKU order, so the statement does not depend on the
order of the request's lines.
"""

from decimal import Decimal

from models.pricing import (
    FlatService,
    HourlyService,
    LineKind,
    PartItem,
    QuotedService,
    ServiceItem,
    StatementLine,
    TieredService,
    TierMode,
)

from .book import CompiledTier, PriceBook
from .errors import PricingError
from .errors import PricingErrorCode as E
from .money import ONE, ZERO
from .pricer import LinePricer

SIXTY = Decimal(60)
SERVICE, PART = LineKind.SERVICE, LineKind.PART


def service_lines(book: PriceBook, items: tuple[ServiceItem, ...], pricer: LinePricer) -> list[StatementLine]:
    out: list[StatementLine] = []
    previous = None
    for i, item in sorted(enumerate(items), key=_by_code):
        if item.code == previous:
            raise PricingError(
                E.DUPLICATE_LINE,
                f"service {item.code!r} is requested twice; add the quantities up",
                f"request.services[{i}].code",
            )
        previous = item.code
        rule = book.services.get(item.code)
        if rule is None:
            raise PricingError(
                E.UNKNOWN_SERVICE,
                f"region {book.region!r} has no price rule for service {item.code!r}",
                f"request.services[{i}].code",
            )
        if isinstance(rule, QuotedService):
            out.append(_quoted(rule, item, pricer, i))
            continue
        if item.amount is not None:
            raise PricingError(
                E.BAD_AMOUNT,
                f"{item.code!r} is priced by its rule ({rule.strategy}); only a quoted service takes an amount",
                f"request.services[{i}].amount",
            )
        if isinstance(rule, HourlyService):
            out += _hourly(rule, item, pricer, i)
            continue
        if item.quantity <= ZERO or item.minutes is not None:
            _bad_quantity(item, i)
        if isinstance(rule, TieredService):
            out += _tiered(rule, book.tiers[rule.code], item.quantity, pricer, i)
        else:
            out.append(_flat(rule, item.quantity, pricer))
    return out


def part_lines(book: PriceBook, items: tuple[PartItem, ...], pricer: LinePricer) -> list[StatementLine]:
    out: list[StatementLine] = []
    previous = None
    for i, item in sorted(enumerate(items), key=_by_sku):
        if item.sku == previous:
            raise PricingError(
                E.DUPLICATE_LINE, f"part {item.sku!r} is listed twice; add the quantities up", f"request.parts[{i}].sku"
            )
        previous = item.sku
        part = book.parts.get(item.sku)
        if part is None:
            raise PricingError(
                E.UNKNOWN_PART,
                f"part {item.sku!r} is not on region {book.region!r}'s price list",
                f"request.parts[{i}].sku",
            )
        if item.quantity <= ZERO:
            raise PricingError(
                E.BAD_QUANTITY, f"quantity {item.quantity} must be positive", f"request.parts[{i}].quantity"
            )
        out.append(
            pricer.priced(
                PART, part.sku, part.name or part.sku, item.quantity, part.unit, part.price, book.part_rules[part.sku]
            )
        )
    return out


def _by_code(pair: tuple[int, ServiceItem]) -> str:
    return pair[1].code


def _by_sku(pair: tuple[int, PartItem]) -> str:
    return pair[1].sku


def _bad_quantity(item: ServiceItem, i: int) -> None:
    path = f"request.services[{i}]"
    if item.quantity <= ZERO:
        raise PricingError(E.BAD_QUANTITY, f"quantity {item.quantity} must be positive", f"{path}.quantity")
    raise PricingError(E.BAD_QUANTITY, f"{item.code!r} is not billed by time; send a quantity", f"{path}.minutes")


def _flat(rule: FlatService, quantity: Decimal, pricer: LinePricer) -> StatementLine:
    return pricer.priced(
        SERVICE,
        rule.code,
        rule.description or rule.code,
        quantity,
        rule.unit,
        rule.price,
        f"services.{rule.code}.price",
    )


def _quoted(rule: QuotedService, item: ServiceItem, pricer: LinePricer, i: int) -> StatementLine:
    """``quantity`` × the amount the request brings (a quote agreed for this ticket)."""
    if item.amount is None:
        raise PricingError(
            E.BAD_AMOUNT, f"{item.code!r} is a quoted service; send its amount", f"request.services[{i}].amount"
        )
    if item.amount < ZERO:
        raise PricingError(E.NEGATIVE_PRICE, f"{item.amount} is negative", f"request.services[{i}].amount")
    if item.quantity <= ZERO or item.minutes is not None:
        _bad_quantity(item, i)
    return pricer.priced(
        SERVICE,
        rule.code,
        rule.description or rule.code,
        item.quantity,
        rule.unit,
        item.amount,
        f"services.{rule.code}.quoted",
    )


def _hourly(rule: HourlyService, item: ServiceItem, pricer: LinePricer, i: int) -> list[StatementLine]:
    """Base fee; labour = (minutes − included) rounded up to the increment, in hours; and a
    top-up line when the two stay under the minimum charge."""
    if item.minutes is None:
        raise PricingError(
            E.BAD_QUANTITY,
            f"{item.code!r} is billed by time; send the minutes worked",
            f"request.services[{i}].minutes",
        )
    if item.quantity != ONE:
        raise PricingError(
            E.BAD_QUANTITY, "an hourly service is one visit; its quantity stays 1", f"request.services[{i}].quantity"
        )
    code, name, step = rule.code, rule.description or rule.code, rule.increment_minutes
    billable = max(0, item.minutes - rule.included_minutes)
    billed = -(-billable // step) * step
    lines = []
    if rule.base_fee:
        lines.append(
            pricer.priced(SERVICE, code, f"{name}: base fee", ONE, "visit", rule.base_fee, f"services.{code}.base_fee")
        )
    included = f", {rule.included_minutes} included" if rule.included_minutes else ""
    labour = f"{name}: labour, {item.minutes} min worked{included}, {billed} min billed in {step}-min steps"
    # billed is a multiple of the increment, a multiple of 3: billed / 60 is an exact decimal
    lines.append(
        pricer.priced(
            SERVICE, code, labour, Decimal(billed) / SIXTY, "h", rule.hourly_rate, f"services.{code}.hourly_rate"
        )
    )
    if rule.minimum_charge:
        minimum = pricer.convert(rule.minimum_charge)
        # covered lines count at what they would have cost: coverage pays the top-up too
        charged = [line.amount if line.covered_amount is None else line.covered_amount for line in lines]
        short = minimum - sum(charged, ZERO)
        if short > ZERO:
            name = f"{name}: top-up to the minimum charge of {minimum}"
            lines.append(pricer.fee(SERVICE, code, name, "visit", short, f"services.{code}.minimum_charge"))
    return lines


def _tiered(
    rule: TieredService, tiers: tuple[CompiledTier, ...], q: Decimal, pricer: LinePricer, i: int
) -> list[StatementLine]:
    """Volume: one line, every unit at the price of the tier ``q`` falls in. Graduated: one
    line per tier reached, with that tier's units at its price."""
    last = tiers[-1].up_to
    if last is not None and q > last:
        raise PricingError(
            E.BAD_QUANTITY, f"quantity {q} is beyond the last tier (up to {last})", f"request.services[{i}].quantity"
        )
    name = rule.description or rule.code
    if rule.mode == TierMode.VOLUME:
        tier = next(t for t in tiers if t.up_to is None or q <= t.up_to)
        return [
            pricer.priced(
                SERVICE,
                rule.code,
                f"{name} (all {q} at the tier {tier.span})",
                q,
                rule.unit,
                tier.unit_price,
                tier.rule,
            )
        ]
    lines = []
    for tier in tiers:
        if q <= tier.over:
            break
        units = (q if tier.up_to is None or q < tier.up_to else tier.up_to) - tier.over
        lines.append(
            pricer.priced(
                SERVICE, rule.code, f"{name} (tier {tier.span})", units, rule.unit, tier.unit_price, tier.rule
            )
        )
    return lines
