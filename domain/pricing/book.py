"""Compiling a region's rules into a ``PriceBook``: every semantic check happens here, once,
so pricing a request only looks things up."""

from dataclasses import dataclass
from decimal import Decimal, localcontext

from models.pricing import (
    CURRENCIES,
    AppliedTax,
    CurrencySpec,
    DiscountCombine,
    DistanceSurcharge,
    FixedSurcharge,
    FlatService,
    HourlyService,
    LineKind,
    PartPrice,
    PercentSurcharge,
    RegionPricing,
    ServiceRule,
    SurchargeRule,
    Tier,
    TieredService,
)

from .errors import PricingError
from .errors import PricingErrorCode as E
from .money import CONTEXT, HUNDRED, ONE, ZERO

# Which kinds of line a percentage at each stage may be computed on: only earlier stages.
_STAGE_BASES = {
    "adjustments": {LineKind.SERVICE, LineKind.PART},
    "surcharges": {LineKind.SERVICE, LineKind.PART, LineKind.ADJUSTMENT},
    "discounts": {LineKind.SERVICE, LineKind.PART, LineKind.ADJUSTMENT, LineKind.SURCHARGE},
}


@dataclass(frozen=True, slots=True)
class CompiledTier:
    over: Decimal
    up_to: Decimal | None
    unit_price: Decimal
    index: int  # position in the rule's ``tiers``
    rule: str  # the rule id its lines carry: "services.<code>.tiers[<index>]"
    span: str  # "over 10 up to 50"


@dataclass(frozen=True, slots=True)
class PriceBook:
    """A validated ``RegionPricing``, indexed for pricing. Build it with ``compile_rules``."""

    rules: RegionPricing
    services: dict[str, ServiceRule]
    tiers: dict[str, tuple[CompiledTier, ...]]  # tiered service code → tiers by ``over``
    parts: dict[str, PartPrice]
    part_rules: dict[str, str]  # sku → the rule id its lines carry ("parts.<sku>")
    member_percent: dict[str, Decimal]
    referral_tiers: tuple[tuple[int, Decimal], ...]  # (min_referrals, percent), ascending
    split_weights: tuple[int, ...]  # shares × 10^k, summing to 10^k
    parties: tuple[str, ...]
    applied_tax: AppliedTax  # shared by every statement (frozen)

    @property
    def region(self) -> str:
        return self.rules.region

    @property
    def currency(self) -> str:
        return self.rules.currency


def currency_spec(code: str, path: str) -> CurrencySpec:
    spec = CURRENCIES.get(code)
    if spec is None:
        known = ", ".join(CURRENCIES)
        raise PricingError(E.UNKNOWN_CURRENCY, f"unknown currency {code!r} (known: {known})", path)
    return spec


def compile_rules(rules: RegionPricing) -> PriceBook:
    """Validate ``rules`` and index them; raises ``PricingError`` on the first problem."""
    with localcontext(CONTEXT):
        return _compile(rules)


def _compile(rules: RegionPricing) -> PriceBook:
    currency_spec(rules.currency, "rules.currency")
    _unique([s.code for s in rules.services], "rules.services", "code")
    tiers = {}
    for i, rule in enumerate(rules.services):
        _check_service(rule, f"rules.services[{i}]")
        if isinstance(rule, TieredService):
            tiers[rule.code] = _compile_tiers(rule, f"rules.services[{i}].tiers")
    _unique([p.sku for p in rules.parts], "rules.parts", "sku")
    for i, part in enumerate(rules.parts):
        _non_negative(part.price, f"rules.parts[{i}].price")
    _unique([a.code for a in rules.adjustments], "rules.adjustments", "code")
    for i, adj in enumerate(rules.adjustments):
        path = f"rules.adjustments[{i}]"
        if adj.percent <= -HUNDRED:
            raise PricingError(E.BAD_PERCENT, "an adjustment must be above -100 %", f"{path}.percent")
        _check_applies_to(adj.applies_to, "adjustments", f"{path}.applies_to")
    _unique([s.code for s in rules.surcharges], "rules.surcharges", "code")
    for i, sur in enumerate(rules.surcharges):
        _check_surcharge(sur, f"rules.surcharges[{i}]")
    member, referral = _compile_discounts(rules)
    if rules.tax.percent < ZERO:
        raise PricingError(E.BAD_PERCENT, "tax cannot be negative", "rules.tax.percent")
    return PriceBook(
        rules=rules,
        services={s.code: s for s in rules.services},
        tiers=tiers,
        parts={p.sku: p for p in rules.parts},
        part_rules={p.sku: f"parts.{p.sku}" for p in rules.parts},
        member_percent=member,
        referral_tiers=referral,
        split_weights=_compile_split(rules),
        parties=tuple(s.party for s in rules.split),
        applied_tax=AppliedTax(name=rules.tax.name, mode=rules.tax.mode, percent=rules.tax.percent),
    )


def _unique(keys: list[str], path: str, name: str) -> None:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise PricingError(E.DUPLICATE_CODE, f"{name} {key!r} is defined twice", f"{path}[{i}].{name}")
        seen.add(key)


def _non_negative(value: Decimal, path: str) -> None:
    if value < ZERO:
        raise PricingError(E.NEGATIVE_PRICE, f"{value} is negative", path)


def _check_percent(value: Decimal, path: str, upper: Decimal | None = None) -> None:
    if value < ZERO or (upper is not None and value > upper):
        bound = f"0…{upper}" if upper is not None else "≥ 0"
        raise PricingError(E.BAD_PERCENT, f"{value} % is outside {bound}", path)


def _check_applies_to(kinds: tuple[LineKind, ...], stage: str, path: str) -> None:
    allowed = _STAGE_BASES[stage]
    for kind in kinds:
        if kind not in allowed:
            names = ", ".join(sorted(allowed))
            raise PricingError(E.BAD_APPLIES_TO, f"{stage} may apply to {names}, not {kind}", path)


def _check_service(rule: ServiceRule, path: str) -> None:
    if isinstance(rule, HourlyService):
        for name in ("base_fee", "hourly_rate", "minimum_charge"):
            _non_negative(getattr(rule, name), f"{path}.{name}")
        if rule.increment_minutes % 3:
            raise PricingError(
                E.BAD_INCREMENT,
                f"increment of {rule.increment_minutes} min: use a multiple of 3 minutes "
                "(6, 12, 15, 30, 60…) so billed hours are exact decimals",
                f"{path}.increment_minutes",
            )
    elif isinstance(rule, TieredService):
        for j, tier in enumerate(rule.tiers):
            _non_negative(tier.unit_price, f"{path}.tiers[{j}].unit_price")
    elif isinstance(rule, FlatService):
        _non_negative(rule.price, f"{path}.price")
    # a quoted service has no price of its own: the request brings it


def _compile_tiers(rule: TieredService, path: str) -> tuple[CompiledTier, ...]:
    """Tiers sorted by ``over``; they must start at 0 and each start where the previous ends."""
    tiers = rule.tiers
    for j, t in enumerate(tiers):
        if t.over < ZERO:
            raise PricingError(E.BAD_TIER, f"a tier cannot start below 0 (over {t.over})", f"{path}[{j}].over")
        if t.up_to is not None and t.up_to <= t.over:
            raise PricingError(E.BAD_TIER, f"tier over {t.over} up to {t.up_to} is empty", f"{path}[{j}].up_to")
    order = sorted(range(len(tiers)), key=lambda j: (tiers[j].over, j))
    compiled = tuple(_compile_tier(rule.code, j, tiers[j]) for j in order)
    if compiled[0].over != ZERO:
        first = compiled[0]
        raise PricingError(E.TIER_GAP, f"the first tier starts over {first.over}, not 0", f"{path}[{first.index}].over")
    for prev, cur in zip(compiled, compiled[1:], strict=False):
        here = f"{path}[{cur.index}].over"
        if prev.up_to is None or cur.over < prev.up_to:
            end = "no limit" if prev.up_to is None else prev.up_to
            message = f"tier over {cur.over} overlaps tier [{prev.index}] (up to {end})"
            raise PricingError(E.OVERLAPPING_TIERS, message, here)
        if cur.over > prev.up_to:
            raise PricingError(E.TIER_GAP, f"nothing prices quantities over {prev.up_to} up to {cur.over}", here)
    return compiled


def _compile_tier(code: str, j: int, t: Tier) -> CompiledTier:
    span = f"over {t.over}" if t.up_to is None else f"over {t.over} up to {t.up_to}"
    return CompiledTier(t.over, t.up_to, t.unit_price, j, f"services.{code}.tiers[{j}]", span)


def _check_surcharge(rule: SurchargeRule, path: str) -> None:
    if isinstance(rule, PercentSurcharge):
        _check_percent(rule.percent, f"{path}.percent")
        _check_applies_to(rule.applies_to, "surcharges", f"{path}.applies_to")
    elif isinstance(rule, FixedSurcharge):
        _non_negative(rule.amount, f"{path}.amount")
    elif isinstance(rule, DistanceSurcharge):
        _non_negative(rule.per_km, f"{path}.per_km")
        if rule.free_km < ZERO:
            raise PricingError(E.BAD_QUANTITY, "free_km cannot be negative", f"{path}.free_km")
        if rule.increment_km <= ZERO:
            raise PricingError(E.BAD_QUANTITY, "increment_km must be positive", f"{path}.increment_km")


def _compile_discounts(rules: RegionPricing) -> tuple[dict[str, Decimal], tuple[tuple[int, Decimal], ...]]:
    d = rules.discounts
    _check_applies_to(d.applies_to, "discounts", "rules.discounts.applies_to")
    _unique([m.level for m in d.member_levels], "rules.discounts.member_levels", "level")
    for i, m in enumerate(d.member_levels):
        _check_percent(m.percent, f"rules.discounts.member_levels[{i}].percent", HUNDRED)
    _unique([str(t.min_referrals) for t in d.referral_tiers], "rules.discounts.referral_tiers", "min_referrals")
    for i, t in enumerate(d.referral_tiers):
        path = f"rules.discounts.referral_tiers[{i}]"
        if t.min_referrals < 1:
            raise PricingError(E.BAD_QUANTITY, "min_referrals must be at least 1", f"{path}.min_referrals")
        _check_percent(t.percent, f"{path}.percent", HUNDRED)
    member = {m.level: m.percent for m in d.member_levels}
    referral = tuple(sorted((t.min_referrals, t.percent) for t in d.referral_tiers))
    if d.combine == DiscountCombine.SUM and member and referral:
        most = max(member.values()) + max(p for _, p in referral)
        if most > HUNDRED:
            raise PricingError(
                E.BAD_PERCENT, f"member + referral discounts can reach {most} %", "rules.discounts.combine"
            )
    return member, referral


def _compile_split(rules: RegionPricing) -> tuple[int, ...]:
    _unique([s.party for s in rules.split], "rules.split", "party")
    total = ZERO
    for i, s in enumerate(rules.split):
        if s.share < ZERO:
            raise PricingError(E.BAD_SHARE, f"share {s.share} is negative", f"rules.split[{i}].share")
        total += s.share
    if total != ONE:
        raise PricingError(E.SHARES_SUM, f"split shares sum to {total}, not 1", "rules.split")
    places = max(0, *(-int(s.share.as_tuple().exponent) for s in rules.split))
    return tuple(int(s.share.scaleb(places)) for s in rules.split)
