"""Percentage adjustments, surcharges and customer discounts.

Each stage computes its percentages on the lines of the *earlier* stages only (never on its
own lines), so the rules within a stage add up and their order does not matter.
"""

from decimal import Decimal

from models.pricing import (
    DiscountCombine,
    DistanceSurcharge,
    FixedSurcharge,
    LineKind,
    PercentSurcharge,
    PricingRequest,
    StatementLine,
)

from .book import PriceBook
from .errors import PricingError
from .errors import PricingErrorCode as E
from .money import ONE, ZERO
from .pricer import LinePricer

Lines = list[StatementLine]
Sums = dict[LineKind, Decimal]  # amount per kind of the lines of the earlier stages


def base_of(sums: Sums, kinds: tuple[LineKind, ...]) -> Decimal:
    """What a percentage applies to: the amounts of the earlier lines of ``kinds``."""
    return sum([sums[kind] for kind in kinds], ZERO)


def adjustment_lines(book: PriceBook, request: PricingRequest, prior: Sums, pricer: LinePricer) -> Lines:
    """+/- percent when the request names the adjustment's condition (urban, tier3_city…)."""
    out = []
    for adj in book.rules.adjustments:
        if adj.when is None or adj.when in request.conditions:
            base = base_of(prior, adj.applies_to)
            if base:
                text = f"{adj.description or adj.code} {'+' if adj.percent >= 0 else ''}{adj.percent} %"
                out.append(
                    pricer.percent(LineKind.ADJUSTMENT, adj.code, text, adj.percent, base, f"adjustments.{adj.code}")
                )
    return out


def surcharge_lines(book: PriceBook, request: PricingRequest, prior: Sums, pricer: LinePricer) -> Lines:
    """Percent, fixed and distance surcharges whose condition holds (``when`` None: always)."""
    out = []
    for sur in book.rules.surcharges:
        if sur.when is not None and sur.when not in request.conditions:
            continue
        name, rule = sur.description or sur.code, f"surcharges.{sur.code}"
        if isinstance(sur, PercentSurcharge):
            base = base_of(prior, sur.applies_to)
            if base:
                text = f"{name} +{sur.percent} %"
                out.append(pricer.percent(LineKind.SURCHARGE, sur.code, text, sur.percent, base, rule))
        elif isinstance(sur, FixedSurcharge):
            out.append(pricer.priced(LineKind.SURCHARGE, sur.code, name, ONE, "job", sur.amount, rule))
        elif isinstance(sur, DistanceSurcharge):
            line = _distance(sur, request.travel_km, pricer, name, rule)
            if line is not None:
                out.append(line)
    return out


def _distance(
    sur: DistanceSurcharge, travel_km: Decimal, pricer: LinePricer, name: str, rule: str
) -> StatementLine | None:
    """Kilometres beyond the free ones, rounded up to the increment, at the per-km price."""
    if travel_km < ZERO:
        raise PricingError(E.BAD_QUANTITY, f"travel distance {travel_km} km is negative", "request.travel_km")
    beyond = travel_km - sur.free_km
    if beyond <= ZERO:
        return None
    steps, rest = divmod(beyond, sur.increment_km)
    billed = (steps + (ONE if rest else ZERO)) * sur.increment_km
    return pricer.priced(
        LineKind.SURCHARGE,
        sur.code,
        f"{name} ({travel_km} km, first {sur.free_km} km free)",
        billed,
        "km",
        sur.per_km,
        rule,
    )


Offer = tuple[Decimal, str, str, str]  # (percent, code, rule, description)


def discount_lines(book: PriceBook, request: PricingRequest, prior: Sums, pricer: LinePricer) -> Lines:
    """Member level and best referral tier: the larger of the two (``best``; member wins a
    tie) or both (``sum``), each on the same base."""
    rules = book.rules.discounts
    member, referral = _member_offer(book, request), _referral_offer(book, request)
    offers = [offer for offer in (member, referral) if offer is not None and offer[0] > ZERO]
    if len(offers) == 2 and rules.combine == DiscountCombine.BEST:
        assert member is not None and referral is not None
        offers = [referral if referral[0] > member[0] else member]
    base = base_of(prior, rules.applies_to) if offers else ZERO
    if not base:
        return []
    return [
        pricer.percent(LineKind.DISCOUNT, code, text, percent, base, rule, negate=True)
        for percent, code, rule, text in offers
    ]


def _member_offer(book: PriceBook, request: PricingRequest) -> Offer | None:
    level = request.member_level
    if level is None:
        return None
    percent = book.member_percent.get(level)
    if percent is None:
        raise PricingError(
            E.UNKNOWN_MEMBER_LEVEL, f"region {book.region!r} has no member level {level!r}", "request.member_level"
        )
    return percent, f"member:{level}", f"discounts.member_levels.{level}", f"Member discount ({level}) -{percent} %"


def _referral_offer(book: PriceBook, request: PricingRequest) -> Offer | None:
    """The best tier reached: the highest percent; of equal ones, the higher threshold."""
    best = None
    for least, percent in book.referral_tiers:  # ascending thresholds
        if least > request.referrals:
            break
        if best is None or percent >= best[1]:
            best = (least, percent)
    if best is None:
        return None
    least, percent = best
    return (
        percent,
        f"referral:{least}",
        f"discounts.referral_tiers.{least}",
        f"Referral discount -{percent} % ({request.referrals} referrals, tier {least}+)",
    )
