"""Properties of the pricing engine over random rule sets and requests (Hypothesis):
lines sum to the totals, the split sums to the total, the statement does not depend on
the order of the request's lines, and no float appears anywhere in a payload."""

import json
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.pricing import allocate, price
from domain.pricing.money import CONTEXT, round_ratio
from models.pricing import CURRENCIES, PricingRequest, RegionPricing, Statement

D = Decimal
CONDITIONS = ["urban", "tier3_city", "night", "rush", "high_altitude"]
MEMBER_LEVELS = ["silver", "gold", "vip"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dec(low: str, high: str, places: int) -> st.SearchStrategy[str]:
    """A decimal as the string a client would send."""
    return st.decimals(min_value=D(low), max_value=D(high), places=places).map(str)


@st.composite
def tiers(draw) -> list[dict]:
    bounds = sorted(draw(st.lists(st.integers(1, 200), unique=True, max_size=3)))
    starts, ends = [0, *bounds], [*bounds, None]
    return [
        {"over": str(o), "up_to": None if u is None else str(u), "unit_price": draw(dec("0", "500", 2))}
        for o, u in zip(starts, ends, strict=True)
    ]


@st.composite
def split(draw) -> list[dict]:
    n = draw(st.integers(1, 5))
    cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=n - 1, max_size=n - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 10_000], strict=True)]
    return [{"party": f"party{i}", "share": str(D(w).scaleb(-4))} for i, w in enumerate(weights)]


@st.composite
def rule_sets(draw) -> RegionPricing:
    services = [
        {"strategy": "flat", "code": "FLAT", "price": draw(dec("0", "2000", 2))},
        {
            "strategy": "hourly",
            "code": "HOURLY",
            "base_fee": draw(dec("0", "200", 2)),
            "hourly_rate": draw(dec("0", "500", 2)),
            "increment_minutes": draw(st.sampled_from([3, 6, 12, 15, 30, 60])),
            "included_minutes": draw(st.integers(0, 60)),
            "minimum_charge": draw(dec("0", "300", 2)),
        },
        {"strategy": "tiered", "code": "VOLUME", "mode": "volume", "tiers": draw(tiers())},
        {"strategy": "tiered", "code": "GRADUATED", "mode": "graduated", "tiers": draw(tiers())},
    ]
    parts = [{"sku": f"P{i}", "price": draw(dec("0", "1000", draw(st.integers(0, 6))))} for i in range(6)]
    adjustments = [
        {
            "code": "urban",
            "when": "urban",
            "percent": draw(dec("0", "50", 2)),
            "applies_to": draw(st.sampled_from([["service"], ["service", "part"]])),
        },
        {"code": "tier3", "when": "tier3_city", "percent": draw(dec("-50", "0", 2))},
    ]
    surcharges = [
        {"type": "percent", "code": "night", "when": "night", "percent": draw(dec("0", "100", 2))},
        {"type": "fixed", "code": "rush", "when": "rush", "amount": draw(dec("0", "200", 2))},
        {"type": "fixed", "code": "altitude", "when": "high_altitude", "amount": draw(dec("0", "200", 2))},
        {
            "type": "distance",
            "code": "travel",
            "per_km": draw(dec("0", "10", 2)),
            "free_km": draw(dec("0", "30", 1)),
            "increment_km": draw(st.sampled_from(["1", "0.5", "5"])),
        },
    ]
    combine = draw(st.sampled_from(["best", "sum"]))
    cap = "50" if combine == "sum" else "100"
    discounts = {
        "member_levels": [{"level": level, "percent": draw(dec("0", cap, 2))} for level in MEMBER_LEVELS],
        "referral_tiers": [{"min_referrals": n, "percent": draw(dec("0", cap, 2))} for n in (3, 5)],
        "combine": combine,
        "applies_to": draw(
            st.sampled_from([["service", "adjustment", "surcharge"], ["service", "part", "adjustment", "surcharge"]])
        ),
    }
    return RegionPricing.model_validate(
        {
            "region": "east",
            "currency": "CNY",
            "services": services,
            "parts": parts,
            "adjustments": adjustments,
            "surcharges": surcharges,
            "discounts": discounts,
            "split": draw(split()),
            "tax": {"mode": draw(st.sampled_from(["exclusive", "inclusive"])), "percent": draw(dec("0", "30", 2))},
        }
    )


@st.composite
def requests(draw) -> PricingRequest:
    services = []
    for code in draw(st.lists(st.sampled_from(["FLAT", "HOURLY", "VOLUME", "GRADUATED"]), unique=True)):
        if code == "HOURLY":
            services.append({"code": code, "minutes": draw(st.integers(0, 600))})
        else:
            services.append({"code": code, "quantity": draw(dec("0.001", "300", 3))})
    parts = [
        {"sku": sku, "quantity": draw(dec("0.01", "50", 2))}
        for sku in draw(st.lists(st.sampled_from([f"P{i}" for i in range(6)]), unique=True))
    ]
    currency = draw(st.sampled_from(["CNY", "USD", "EUR", "JPY"]))
    rates = [{"base": "CNY", "quote": q, "rate": draw(dec("0.0001", "50", 4))} for q in ("USD", "EUR", "JPY")]
    return PricingRequest.model_validate(
        {
            "reference": "K1",
            "region": "east",
            "currency": currency,
            "services": services,
            "parts": parts,
            "conditions": draw(st.lists(st.sampled_from(CONDITIONS), unique=True)),
            "travel_km": draw(dec("0", "100", 1)),
            "member_level": draw(st.none() | st.sampled_from(MEMBER_LEVELS)),
            "referrals": draw(st.integers(0, 8)),
            "rates": {"taken_at": "2026-11-25T08:00:00Z", "rates": rates},
        }
    )


@SETTINGS
@given(rule_sets(), requests())
def test_lines_sum_to_the_totals_exactly(rules, request):
    s = price(rules, request)
    quantum = CURRENCIES[s.currency].quantum
    for line in s.lines:
        assert line.net + line.tax == line.gross
        assert line.amount == (line.quantity * line.unit_price).quantize(quantum, ROUND_HALF_UP)
        for value in (line.amount, line.net, line.tax, line.gross):
            assert value.as_tuple().exponent == quantum.as_tuple().exponent  # rounded, per line
    t = s.totals
    assert sum((line.amount for line in s.lines), D(0)) == t.subtotal
    assert sum((line.net for line in s.lines), D(0)) == t.net
    assert sum((line.tax for line in s.lines), D(0)) == t.tax
    assert sum((line.gross for line in s.lines), D(0)) == t.total == t.net + t.tax
    assert t.services + t.parts + t.adjustments + t.surcharges + t.discounts == t.subtotal
    assert sum(s.components.values(), D(0)) == t.total
    assert sum(s.shares.values()) == (1 if t.total else 0)
    assert t.total >= 0


@SETTINGS
@given(rule_sets(), requests())
def test_the_split_sums_to_the_total_and_each_party_is_within_a_minor_unit(rules, request):
    s = price(rules, request)
    quantum = CURRENCIES[s.currency].quantum
    assert sum(s.split.values(), D(0)) == s.totals.total
    assert list(s.split) == [share.party for share in rules.split]
    for share in rules.split:
        assert abs(s.split[share.party] - s.totals.total * share.share) < quantum


@SETTINGS
@given(rule_sets(), requests(), st.randoms(use_true_random=False))
def test_the_order_of_the_request_lines_does_not_matter(rules, request, rnd):
    services, parts, conditions = list(request.services), list(request.parts), list(request.conditions)
    rnd.shuffle(services)
    rnd.shuffle(parts)
    rnd.shuffle(conditions)
    shuffled = request.model_copy(
        update={"services": tuple(services), "parts": tuple(parts), "conditions": tuple(conditions)}
    )
    a, b = price(rules, request), price(rules, shuffled)
    assert a.totals == b.totals and a.split == b.split
    assert a == b and a.model_dump_json() == b.model_dump_json()


def _no_float(text: str):
    raise AssertionError(f"a JSON number with a fraction in a payload: {text}")


def _walk(python, dumped, path="") -> int:
    """Every Decimal in the Python dump is a string in the JSON dump; nothing is a float."""
    assert not isinstance(dumped, float), path
    if isinstance(python, dict):
        return sum(_walk(v, dumped[k], f"{path}.{k}") for k, v in python.items())
    if isinstance(python, list | tuple):
        return sum(_walk(v, d, f"{path}[{i}]") for i, (v, d) in enumerate(zip(python, dumped, strict=True)))
    if isinstance(python, Decimal):
        assert isinstance(dumped, str) and Decimal(dumped) == python, path
        return 1
    return 0


@SETTINGS
@given(rule_sets(), requests())
def test_no_float_anywhere_and_the_json_round_trip_is_exact(rules, request):
    s = price(rules, request)
    money_fields = _walk(s.model_dump(), s.model_dump(mode="json"))
    assert money_fields >= 9 + 2 * 6  # totals, components, shares at least
    json.loads(s.model_dump_json(), parse_float=_no_float)
    json.loads(rules.model_dump_json(), parse_float=_no_float)
    json.loads(request.model_dump_json(), parse_float=_no_float)
    assert Statement.model_validate(s.model_dump(mode="json")) == s
    assert Statement.model_validate_json(s.model_dump_json()) == s
    assert RegionPricing.model_validate_json(rules.model_dump_json()) == rules
    assert PricingRequest.model_validate_json(request.model_dump_json()) == request


@SETTINGS
@given(st.integers(-(10**9), 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=8).filter(any))
def test_allocate_sums_exactly_and_is_within_one_unit(units, weights):
    parts = allocate(units, weights)
    assert sum(parts) == units
    whole = sum(weights)
    for part, w in zip(parts, weights, strict=True):
        assert abs(Fraction(part) - Fraction(units * w, whole)) < 1


def _exact_half_up(value: Fraction, decimals: int) -> Decimal:
    scaled = value * 10**decimals
    sign = -1 if scaled < 0 else 1
    units = int(abs(scaled) + Fraction(1, 2))  # half up, away from zero
    return Decimal(sign * units).scaleb(-decimals)


@SETTINGS
@given(
    st.decimals(min_value=D("-999999999999"), max_value=D("999999999999"), places=2),
    st.decimals(min_value=D("0"), max_value=D("99999"), places=4),
    st.sampled_from(["CNY", "JPY"]),
)
def test_inclusive_tax_extraction_rounds_the_exact_quotient(amount, percent, currency):
    spec = CURRENCIES[currency]
    exact = Fraction(amount) * Fraction(percent) / (100 + Fraction(percent))
    with localcontext(CONTEXT):
        assert round_ratio(amount * percent, 100 + percent, spec) == _exact_half_up(exact, spec.decimals)
