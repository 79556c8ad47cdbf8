"""``price``: rules + request → statement. The pipeline, totals, shares and the split.

Order of operations (docs/pricing.md explains why):

    conversion (each price-list amount enters its line in the billing currency)
    → base lines (services, parts) → adjustments → surcharges → discounts
    → tax per line → totals → component shares → revenue split
"""

from decimal import Decimal, localcontext

from models.pricing import (
    CurrencySpec,
    PricingRequest,
    RegionPricing,
    Statement,
    StatementLine,
    Totals,
    trusted_builder,
)

from .book import PriceBook, compile_rules, currency_spec
from .errors import PricingError
from .errors import PricingErrorCode as E
from .lines import part_lines, service_lines
from .modifiers import Sums, adjustment_lines, discount_lines, surcharge_lines
from .money import CONTEXT, ZERO, allocate
from .pricer import KINDS as _KINDS
from .pricer import LinePricer, line_pricer

SHARE_PLACES = 4  # component shares are given in 1/10,000 of the total
_SHARE_WHOLE = 10**SHARE_PLACES
_SHARE_QUANTUM = Decimal(1).scaleb(-SHARE_PLACES)  # 0.0001
Lines = list[StatementLine]

SERVICE, PART, ADJUSTMENT, SURCHARGE, DISCOUNT = _KINDS
# Plain-string component names; the sums per kind are kept in this order (``LinePricer``).
_KIND_NAMES = tuple(kind.value for kind in _KINDS)
_Statement = trusted_builder(Statement)
_Totals = trusted_builder(Totals)


def price(rules: RegionPricing | PriceBook, request: PricingRequest) -> Statement:
    """Price ``request`` with a region's rules. Pure and deterministic: no I/O, no clock, no
    randomness; the same request with its lines in any order gives the same statement.

    Pass a ``PriceBook`` (``compile_rules(rules)``) to skip validating the rules again when
    pricing many requests. Raises ``PricingError``.
    """
    book = rules if isinstance(rules, PriceBook) else compile_rules(rules)
    with localcontext(CONTEXT):
        return _price(book, request)


def _price(book: PriceBook, request: PricingRequest) -> Statement:
    if request.region != book.region:
        raise PricingError(
            E.REGION_MISMATCH, f"the rules are for region {book.region!r}, not {request.region!r}", "request.region"
        )
    spec = currency_spec(request.currency, "request.currency")
    pricer = line_pricer(book.currency, spec, request.rates, book.rules.tax, request.coverage)
    lines = _lines(book, request, pricer)
    totals, components = _totals(pricer.amounts, pricer.taxes, pricer.tax_inclusive)
    return _Statement(
        {
            "reference": request.reference,
            "region": book.region,
            "rules_version": book.rules.version,
            "currency": spec.code,
            "price_list_currency": book.currency,
            "rates_taken_at": request.rates.taken_at if pricer.used and request.rates else None,
            "rates_used": pricer.used,
            "tax": book.applied_tax,
            "lines": tuple(lines),
            "totals": totals,
            "components": components,
            "shares": _shares(components, spec),
            "split": _split(book, totals.total, spec),
            "inputs": None,
        }
    )


def _base_lines(book: PriceBook, request: PricingRequest, _: Sums, pricer: LinePricer) -> Lines:
    return service_lines(book, request.services, pricer) + part_lines(book, request.parts, pricer)


_STAGES = (_base_lines, adjustment_lines, surcharge_lines, discount_lines)


def _lines(book: PriceBook, request: PricingRequest, pricer: LinePricer) -> Lines:
    """All lines, stage by stage; each stage sees the amounts per kind of the earlier ones."""
    lines: Lines = []
    for stage in _STAGES:
        lines += stage(book, request, dict(pricer.amounts), pricer)
    return lines


def _totals(amounts: Sums, taxes: Sums, inclusive: bool) -> tuple[Totals, dict[str, Decimal]]:
    """Sums of exact, already rounded line amounts (nothing is rounded here), and the
    components: the net amount per kind plus the tax, which add up to the total.
    Per line, net + tax = gross and the amount is the net (exclusive) or the gross
    (inclusive), so Σ gross and Σ net follow from Σ amount and Σ tax."""
    subtotal = sum(amounts.values(), ZERO)
    tax = sum(taxes.values(), ZERO)
    if inclusive:
        components = {name: a - t for name, a, t in zip(_KIND_NAMES, amounts.values(), taxes.values(), strict=True)}
        net, total = subtotal - tax, subtotal
    else:
        components = dict(zip(_KIND_NAMES, amounts.values(), strict=True))
        net, total = subtotal, subtotal + tax
    components["tax"] = tax
    totals = _Totals(
        {
            "services": amounts[SERVICE],
            "parts": amounts[PART],
            "adjustments": amounts[ADJUSTMENT],
            "surcharges": amounts[SURCHARGE],
            "discounts": amounts[DISCOUNT],
            "subtotal": subtotal,
            "net": net,
            "tax": tax,
            "total": total,
        }
    )
    return totals, components


def _shares(components: dict[str, Decimal], spec: CurrencySpec) -> dict[str, Decimal]:
    """Each component's share of the total in 1/10,000, allocated by largest remainder so
    that the shares sum to exactly 1 (all 0 when the total is 0)."""
    scale = spec.scale
    units = [int(v * scale) for v in components.values()]
    whole = sum(units)
    if whole == 0:
        steps = [0] * len(units)
    else:
        sign = 1 if whole > 0 else -1
        steps = allocate(_SHARE_WHOLE, [sign * u for u in units])
    return {name: Decimal(n) * _SHARE_QUANTUM for name, n in zip(components, steps, strict=True)}


def _split(book: PriceBook, total: Decimal, spec: CurrencySpec) -> dict[str, Decimal]:
    """The total shared out by the rules' shares in minor units, largest remainder first;
    ties go to the party listed first."""
    units = allocate(int(total * spec.scale), book.split_weights)
    quantum = spec.quantum
    return {party: Decimal(u) * quantum for party, u in zip(book.parties, units, strict=True)}
