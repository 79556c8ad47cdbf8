"""The pricing engine, table by table: every strategy (quoted included), adjustment, surcharge,
discount, tax mode, currency and split, warranty and contract coverage, the rounding edge cases,
the errors, and the night / holiday conditions of a calendar — with exact Decimals."""

import copy
import json
import pickle
from datetime import UTC, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.calendar import conditions_at
from domain.pricing import PricingError, allocate, compile_rules, price
from domain.pricing.errors import PricingErrorCode as E
from models.calendar import BusinessCalendar
from models.pricing import (
    CURRENCIES,
    LineKind,
    PricingRequest,
    RegionPricing,
    Statement,
    StatementLine,
)
from tests.domain.test_pricing_properties import SETTINGS, requests, rule_sets

TIERS = [
    {"over": "0", "up_to": "10", "unit_price": "30"},
    {"over": "10", "up_to": "50", "unit_price": "25"},
    {"over": "50", "unit_price": "20"},
]

BASE = {
    "region": "east",
    "version": "t1",
    "currency": "CNY",
    "services": [
        {"strategy": "flat", "code": "CLEAN", "description": "Cleaning package", "price": "199"},
        {
            "strategy": "hourly",
            "code": "REPAIR",
            "description": "Repair",
            "base_fee": "80",
            "hourly_rate": "120",
            "increment_minutes": 15,
            "included_minutes": 30,
            "minimum_charge": "150",
        },
        {"strategy": "tiered", "code": "FILTER-V", "mode": "volume", "tiers": TIERS},
        {"strategy": "tiered", "code": "FILTER-G", "mode": "graduated", "tiers": TIERS},
    ],
    "parts": [
        {"sku": "CAP", "name": "Capacitor", "price": "45.50"},
        {"sku": "PIPE", "name": "Copper pipe", "unit": "m", "price": "38.80"},
        {"sku": "SCREW", "name": "Screw", "price": "0.125"},
    ],
    "adjustments": [
        {"code": "urban", "description": "Urban premium", "when": "urban", "percent": "20"},
        {"code": "tier3", "description": "Lower-tier city", "when": "tier3_city", "percent": "-10"},
    ],
    "surcharges": [
        {"type": "percent", "code": "night", "description": "Night work", "when": "night", "percent": "30"},
        {"type": "fixed", "code": "rush", "description": "Rush", "when": "rush", "amount": "50"},
        {
            "type": "fixed",
            "code": "altitude",
            "description": "High-altitude work",
            "when": "high_altitude",
            "amount": "100",
        },
        {"type": "distance", "code": "travel", "description": "Travel", "per_km": "2.5", "free_km": "10"},
    ],
    "discounts": {
        "member_levels": [
            {"level": "silver", "percent": "5"},
            {"level": "gold", "percent": "10"},
            {"level": "vip", "percent": "25"},
        ],
        "referral_tiers": [{"min_referrals": 3, "percent": "20"}, {"min_referrals": 5, "percent": "30"}],
    },
    "tax": {"mode": "exclusive", "percent": "0"},
    "split": [{"party": "platform", "share": "1"}],
}


def rules(**changes) -> RegionPricing:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return RegionPricing.model_validate(data)


def request(**fields) -> PricingRequest:
    return PricingRequest.model_validate({"region": "east", "currency": "CNY", **fields})


def run(r: RegionPricing | None = None, **fields) -> Statement:
    return price(r or rules(), request(**fields))


def amounts(statement: Statement, kind: LineKind | None = None) -> list[tuple[str, D]]:
    return [(line.code, line.amount) for line in statement.lines if kind is None or line.kind == kind]


def usd(rate: str = "0.1383") -> dict:
    return {
        "taken_at": "2026-11-25T08:00:00Z",
        "source": "test",
        "rates": [{"base": "CNY", "quote": "USD", "rate": rate}, {"base": "CNY", "quote": "JPY", "rate": "20.5"}],
    }


# --- strategies ---------------------------------------------------------------------------


@pytest.mark.parametrize(("quantity", "expected"), [("1", "199.00"), ("3", "597.00"), ("0.5", "99.50")])
def test_flat_package(quantity, expected):
    s = run(services=[{"code": "CLEAN", "quantity": quantity}])
    (line,) = s.lines
    assert (line.kind, line.quantity, line.unit, line.unit_price, line.amount) == (
        LineKind.SERVICE,
        D(quantity),
        "job",
        D("199"),
        D(expected),
    )
    assert line.rule == "services.CLEAN.price"
    assert s.totals.total == D(expected)


@pytest.mark.parametrize(
    ("minutes", "hours", "labour", "top_up"),
    [
        (95, "1.25", "150.00", None),  # 95 - 30 included = 65 → 75 min billed
        (75, "0.75", "90.00", None),  # 45 min billed: 80 + 90 = 170 ≥ 150
        (60, "0.5", "60.00", "10.00"),  # 80 + 60 = 140 → top-up to 150
        (31, "0.25", "30.00", "40.00"),  # 1 min beyond the included half hour bills 15
        (30, "0", "0.00", "70.00"),  # all included: base fee + top-up
        (0, "0", "0.00", "70.00"),
    ],
)
def test_hourly_base_fee_increments_included_minutes_and_minimum(minutes, hours, labour, top_up):
    s = run(services=[{"code": "REPAIR", "minutes": minutes}])
    expected = [("REPAIR", D("80.00")), ("REPAIR", D(labour))] + ([("REPAIR", D(top_up))] if top_up else [])
    assert amounts(s) == expected
    base, work = s.lines[0], s.lines[1]
    assert (base.quantity, base.unit, base.rule) == (D(1), "visit", "services.REPAIR.base_fee")
    assert (work.quantity, work.unit, work.unit_price, work.rule) == (
        D(hours),
        "h",
        D("120"),
        "services.REPAIR.hourly_rate",
    )
    if top_up:
        assert s.lines[2].rule == "services.REPAIR.minimum_charge"
        assert s.totals.total == D("150.00")


@pytest.mark.parametrize(
    ("increment", "minutes", "hours", "labour"),
    [(30, 61, "1.5", "150.00"), (30, 60, "1", "100.00"), (6, 7, "0.2", "20.00"), (60, 1, "1", "100.00")],
)
def test_hourly_rounds_worked_time_up_to_the_increment(increment, minutes, hours, labour):
    r = rules(services=[{"strategy": "hourly", "code": "H", "hourly_rate": "100", "increment_minutes": increment}])
    s = run(r, services=[{"code": "H", "minutes": minutes}])
    assert [(line.quantity, line.amount) for line in s.lines] == [(D(hours), D(labour))]


@pytest.mark.parametrize(
    ("code", "quantity", "expected"),
    [
        ("FILTER-V", "10", [("FILTER-V", D("300.00"))]),  # boundary belongs to the lower tier
        ("FILTER-V", "11", [("FILTER-V", D("275.00"))]),  # all 11 at 25
        ("FILTER-V", "50", [("FILTER-V", D("1250.00"))]),
        ("FILTER-V", "51", [("FILTER-V", D("1020.00"))]),  # all 51 at 20
        ("FILTER-V", "0.5", [("FILTER-V", D("15.00"))]),
        ("FILTER-G", "10", [("FILTER-G", D("300.00"))]),
        ("FILTER-G", "12", [("FILTER-G", D("300.00")), ("FILTER-G", D("50.00"))]),
        ("FILTER-G", "60", [("FILTER-G", D("300.00")), ("FILTER-G", D("1000.00")), ("FILTER-G", D("200.00"))]),
    ],
)
def test_tiered_volume_and_graduated(code, quantity, expected):
    s = run(services=[{"code": code, "quantity": quantity}])
    assert amounts(s) == expected


def test_graduated_lines_name_their_tier():
    s = run(services=[{"code": "FILTER-G", "quantity": "60"}])
    assert [(line.quantity, line.unit_price, line.rule) for line in s.lines] == [
        (D("10"), D("30"), "services.FILTER-G.tiers[0]"),
        (D("40"), D("25"), "services.FILTER-G.tiers[1]"),
        (D("10"), D("20"), "services.FILTER-G.tiers[2]"),
    ]


def test_tiers_may_be_listed_in_any_order():
    shuffled = [TIERS[2], TIERS[0], TIERS[1]]
    r = rules(services=[{"strategy": "tiered", "code": "T", "mode": "graduated", "tiers": shuffled}])
    s = run(r, services=[{"code": "T", "quantity": "12"}])
    assert [(line.amount, line.rule) for line in s.lines] == [
        (D("300.00"), "services.T.tiers[1]"),
        (D("50.00"), "services.T.tiers[2]"),
    ]


@pytest.mark.parametrize(
    ("sku", "quantity", "expected"),
    [
        ("CAP", "2", "91.00"),
        ("PIPE", "3.5", "135.80"),
        ("SCREW", "1", "0.13"),
        ("SCREW", "3", "0.38"),
        ("SCREW", "4", "0.50"),
    ],
)
def test_parts_at_their_list_price(sku, quantity, expected):
    s = run(parts=[{"sku": sku, "quantity": quantity}])
    (line,) = s.lines
    assert (line.kind, line.amount, line.rule) == (LineKind.PART, D(expected), f"parts.{sku}")


# --- adjustments, surcharges, discounts -----------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], []),
        (["urban"], [("urban", D("46.00"))]),  # +20 % of the services (230.00), not the parts
        (["tier3_city"], [("tier3", D("-23.00"))]),
        (["urban", "tier3_city"], [("urban", D("46.00")), ("tier3", D("-23.00"))]),  # each on the same base
        (["unrelated"], []),
    ],
)
def test_percentage_adjustments_apply_to_services(conditions, expected):
    s = run(
        services=[{"code": "REPAIR", "minutes": 95}], parts=[{"sku": "CAP", "quantity": "1"}], conditions=conditions
    )
    assert amounts(s, LineKind.ADJUSTMENT) == expected
    for line in s.lines:
        if line.kind == LineKind.ADJUSTMENT:
            assert (line.base, line.quantity, line.unit_price) == (D("230.00"), D(1), line.amount)


def test_adjustment_can_cover_parts_too():
    r = rules(adjustments=[{"code": "urban", "when": "urban", "percent": "20", "applies_to": ["service", "part"]}])
    s = run(r, services=[{"code": "CLEAN"}], parts=[{"sku": "CAP", "quantity": "1"}], conditions=["urban"])
    assert amounts(s, LineKind.ADJUSTMENT) == [("urban", D("48.90"))]  # 20 % of 244.50


@pytest.mark.parametrize(
    ("conditions", "km", "expected"),
    [
        (["night"], "0", [("night", D("69.00"))]),  # 30 % of 230.00
        (["urban", "night"], "0", [("night", D("82.80"))]),  # 30 % of 230.00 + 46.00
        (["rush"], "0", [("rush", D("50.00"))]),
        (["high_altitude"], "0", [("altitude", D("100.00"))]),
        ([], "23.4", [("travel", D("35.00"))]),  # 13.4 km beyond the free 10 → 14 km
        ([], "10", []),
        ([], "10.01", [("travel", D("2.50"))]),
        (
            ["night", "rush", "high_altitude"],
            "12",
            [("night", D("69.00")), ("rush", D("50.00")), ("altitude", D("100.00")), ("travel", D("5.00"))],
        ),
    ],
)
def test_surcharges(conditions, km, expected):
    s = run(services=[{"code": "REPAIR", "minutes": 95}], conditions=conditions, travel_km=km)
    assert amounts(s, LineKind.SURCHARGE) == expected


def test_surcharges_do_not_compound_on_each_other():
    r = rules(
        surcharges=[
            {"type": "percent", "code": "a", "percent": "10"},
            {"type": "percent", "code": "b", "percent": "10", "applies_to": ["service", "adjustment"]},
        ]
    )
    s = run(r, services=[{"code": "CLEAN"}])
    assert amounts(s, LineKind.SURCHARGE) == [("a", D("19.90")), ("b", D("19.90"))]


def test_distance_increment_and_line():
    r = rules(surcharges=[{"type": "distance", "code": "travel", "per_km": "3", "free_km": "5", "increment_km": "5"}])
    (line,) = run(r, services=[{"code": "CLEAN"}], travel_km="18.4").lines[1:]
    assert (line.quantity, line.unit, line.unit_price, line.amount) == (D("15"), "km", D("3"), D("45.00"))


@pytest.mark.parametrize(
    ("member", "referrals", "expected"),
    [
        (None, 0, []),
        ("silver", 0, [("member:silver", D("-9.95"))]),
        ("gold", 0, [("member:gold", D("-19.90"))]),
        (None, 2, []),
        (None, 3, [("referral:3", D("-39.80"))]),  # 3 referrals → 20 %
        (None, 4, [("referral:3", D("-39.80"))]),
        (None, 5, [("referral:5", D("-59.70"))]),  # 5 → 30 %
        (None, 50, [("referral:5", D("-59.70"))]),
        ("gold", 3, [("referral:3", D("-39.80"))]),  # the better of 10 % and 20 %
        ("vip", 3, [("member:vip", D("-49.75"))]),  # 25 % beats 20 %
        ("vip", 5, [("referral:5", D("-59.70"))]),
    ],
)
def test_member_and_referral_discounts_best_applies(member, referrals, expected):
    s = run(
        services=[{"code": "CLEAN"}], parts=[{"sku": "CAP", "quantity": "1"}], member_level=member, referrals=referrals
    )
    assert amounts(s, LineKind.DISCOUNT) == expected  # on the service (199.00), not the part


def test_equal_discounts_member_wins_and_sum_mode_applies_both():
    tie = {
        "member_levels": [{"level": "gold", "percent": "20"}],
        "referral_tiers": [{"min_referrals": 3, "percent": "20"}],
    }
    assert amounts(
        run(rules(discounts=tie), services=[{"code": "CLEAN"}], member_level="gold", referrals=3), LineKind.DISCOUNT
    ) == [("member:gold", D("-39.80"))]
    both = {**tie, "combine": "sum"}
    s = run(rules(discounts=both), services=[{"code": "CLEAN"}], member_level="gold", referrals=3)
    assert amounts(s, LineKind.DISCOUNT) == [("member:gold", D("-39.80")), ("referral:3", D("-39.80"))]
    assert s.totals.discounts == D("-79.60")


def test_referral_tiers_in_any_order_best_matching_applies():
    tiers = {
        "referral_tiers": [
            {"min_referrals": 5, "percent": "30"},
            {"min_referrals": 10, "percent": "25"},
            {"min_referrals": 3, "percent": "20"},
        ]
    }
    s = run(rules(discounts=tiers), services=[{"code": "CLEAN"}], referrals=12)
    assert amounts(s, LineKind.DISCOUNT) == [("referral:5", D("-59.70"))]  # 30 % is the best reached


def test_discount_covers_adjustments_and_surcharges():
    s = run(services=[{"code": "CLEAN"}], conditions=["urban", "rush"], member_level="gold")
    # 199.00 + 39.80 urban + 50.00 rush = 288.80 → -28.88
    assert amounts(s, LineKind.DISCOUNT) == [("member:gold", D("-28.88"))]
    assert s.lines[-1].base == D("288.80")


# --- tax ------------------------------------------------------------------------------------


def test_exclusive_tax_is_added_and_rounded_per_line():
    r = rules(
        tax={"mode": "exclusive", "percent": "13"},
        parts=[{"sku": "A", "price": "10.05"}, {"sku": "B", "price": "10.05"}],
    )
    s = run(r, parts=[{"sku": "A", "quantity": "1"}, {"sku": "B", "quantity": "1"}])
    assert [(line.net, line.tax, line.gross) for line in s.lines] == [(D("10.05"), D("1.31"), D("11.36"))] * 2
    # per line: 1.3065 → 1.31 twice = 2.62 (13 % of the 20.10 sum would be 2.61)
    assert (s.totals.subtotal, s.totals.net, s.totals.tax, s.totals.total) == (
        D("20.10"),
        D("20.10"),
        D("2.62"),
        D("22.72"),
    )


def test_inclusive_tax_is_extracted_per_line():
    r = rules(
        tax={"mode": "inclusive", "percent": "13"},
        parts=[{"sku": "A", "price": "113"}, {"sku": "B", "price": "10"}, {"sku": "C", "price": "0.01"}],
    )
    s = run(r, parts=[{"sku": "A", "quantity": "1"}, {"sku": "B", "quantity": "1"}, {"sku": "C", "quantity": "1"}])
    assert [(line.amount, line.net, line.tax, line.gross) for line in s.lines] == [
        (D("113.00"), D("100.00"), D("13.00"), D("113.00")),
        (D("10.00"), D("8.85"), D("1.15"), D("10.00")),  # 10 × 13/113 = 1.1504…
        (D("0.01"), D("0.01"), D("0.00"), D("0.01")),
    ]
    assert (s.totals.subtotal, s.totals.net, s.totals.tax, s.totals.total) == (
        D("123.01"),
        D("108.86"),
        D("14.15"),
        D("123.01"),
    )


def test_tax_on_a_discount_line_is_negative():
    s = run(rules(tax={"mode": "exclusive", "percent": "6"}), services=[{"code": "CLEAN"}], member_level="gold")
    discount = s.lines[-1]
    assert (discount.amount, discount.tax, discount.gross) == (D("-19.90"), D("-1.19"), D("-21.09"))
    assert s.totals.total == D("189.85")  # 199.00 + 11.94 - 21.09


# --- currency -------------------------------------------------------------------------------


def test_conversion_uses_the_snapshot_and_records_it():
    s = run(currency="USD", rates=usd(), services=[{"code": "CLEAN"}, {"code": "REPAIR", "minutes": 95}])
    assert s.currency == "USD" and s.price_list_currency == "CNY"
    assert [(r.base, r.quote, r.rate) for r in s.rates_used] == [("CNY", "USD", D("0.1383"))]
    assert s.rates_taken_at.isoformat() == "2026-11-25T08:00:00+00:00"
    clean, base, labour = s.lines
    assert (clean.list_unit_price, clean.unit_price, clean.amount) == (D("199"), D("27.5217"), D("27.52"))
    assert (base.unit_price, base.amount) == (D("11.0640"), D("11.06"))
    assert (labour.quantity, labour.unit_price, labour.amount) == (D("1.25"), D("16.5960"), D("20.75"))  # 20.745 ↑


def test_minimum_charge_and_fixed_fees_are_converted_too():
    s = run(currency="USD", rates=usd(), services=[{"code": "REPAIR", "minutes": 0}], conditions=["rush"])
    # minimum 150 CNY = 20.745 → 20.75 USD; base 11.06 → top-up 9.69; rush 50 CNY = 6.915 → 6.92
    assert amounts(s) == [("REPAIR", D("11.06")), ("REPAIR", D("0.00")), ("REPAIR", D("9.69")), ("rush", D("6.92"))]


def test_same_currency_needs_no_rate():
    s = run(services=[{"code": "CLEAN"}])
    assert (s.rates_used, s.rates_taken_at, s.lines[0].list_unit_price) == ((), None, None)


def test_jpy_has_no_decimals():
    r = rules(
        tax={"mode": "exclusive", "percent": "10"},
        split=[{"party": "a", "share": "0.5"}, {"party": "b", "share": "0.5"}],
    )
    s = run(r, currency="JPY", rates=usd(), services=[{"code": "CLEAN"}])
    (line,) = s.lines
    assert (line.unit_price, line.amount, line.tax, line.gross) == (D("4079.5"), D("4080"), D("408"), D("4488"))
    assert s.split == {"a": D("2244"), "b": D("2244")}
    assert CURRENCIES["JPY"].quantum == D("1")


# --- split and shares -----------------------------------------------------------------------


def split_of(total: str, shares: list[tuple[str, str]], currency: str = "CNY") -> dict[str, D]:
    r = rules(parts=[{"sku": "X", "price": total}], split=[{"party": p, "share": s} for p, s in shares])
    kw = {
        "currency": currency,
        "rates": {"taken_at": "2026-11-25T00:00:00Z", "rates": [{"base": "CNY", "quote": currency, "rate": "1"}]},
    }
    s = price(r, request(parts=[{"sku": "X", "quantity": "1"}], **(kw if currency != "CNY" else {})))
    assert sum(s.split.values()) == s.totals.total
    return s.split


@pytest.mark.parametrize(
    ("total", "shares", "expected"),
    [
        ("10.00", [("a", "0.3333"), ("b", "0.3333"), ("c", "0.3334")], ["3.33", "3.33", "3.34"]),
        ("10.00", [("a", "0.3334"), ("b", "0.3333"), ("c", "0.3333")], ["3.34", "3.33", "3.33"]),
        ("100.01", [("platform", "0.2"), ("provider", "0.3"), ("engineer", "0.5")], ["20.00", "30.00", "50.01"]),
        ("0.01", [("a", "0.5"), ("b", "0.5")], ["0.01", "0.00"]),  # a tie: the party listed first
        ("0.01", [("b", "0.5"), ("a", "0.5")], ["0.01", "0.00"]),
        ("0.02", [("a", "0.25"), ("b", "0.25"), ("c", "0.5")], ["0.01", "0.00", "0.01"]),
        ("0.05", [("a", "0.2"), ("b", "0.2"), ("c", "0.2"), ("d", "0.2"), ("e", "0.2")], ["0.01"] * 5),
        ("7.00", [("a", "1")], ["7.00"]),
        ("9.99", [("a", "0"), ("b", "1")], ["0.00", "9.99"]),
    ],
)
def test_split_largest_remainder(total, shares, expected):
    split = split_of(total, shares)
    assert list(split) == [p for p, _ in shares]
    assert list(split.values()) == [D(e) for e in expected]


def test_split_in_yen():
    assert list(split_of("1000", [("a", "0.3333"), ("b", "0.3333"), ("c", "0.3334")], "JPY").values()) == [
        D("333"),
        D("333"),
        D("334"),
    ]


@pytest.mark.parametrize(
    ("units", "weights", "expected"),
    [
        (1000, [1, 1, 1], [334, 333, 333]),
        (1, [1, 1], [1, 0]),
        (5, [3, 0, 2], [3, 0, 2]),
        (-1, [1, 1], [0, -1]),
        (10000, [10774, 7894, 2155, 5055, -3597, 2897], [4279, 3135, 856, 2008, -1429, 1151]),
    ],
)
def test_allocate(units, weights, expected):
    assert allocate(units, weights) == expected


def test_component_shares_sum_to_one():
    s = run(
        rules(tax={"mode": "exclusive", "percent": "13"}),
        services=[{"code": "CLEAN"}],
        parts=[{"sku": "CAP", "quantity": "1"}],
        member_level="gold",
    )
    # 199.00 + 45.50 - 19.90 = 224.60 net, tax 25.87 + 5.92 - 2.59 = 29.20, total 253.80
    assert s.components == {
        "service": D("199.00"),
        "part": D("45.50"),
        "adjustment": D("0"),
        "surcharge": D("0"),
        "discount": D("-19.90"),
        "tax": D("29.20"),
    }
    assert sum(s.components.values()) == s.totals.total == D("253.80")
    assert s.shares == {
        "service": D("0.7841"),
        "part": D("0.1793"),
        "adjustment": D("0"),
        "surcharge": D("0"),
        "discount": D("-0.0784"),
        "tax": D("0.1150"),
    }
    assert sum(s.shares.values()) == 1


def test_component_shares_of_a_zero_total_are_zero():
    r = rules(discounts={"member_levels": [{"level": "all", "percent": "100"}]})
    s = run(r, services=[{"code": "CLEAN"}], member_level="all")
    assert s.totals.total == 0
    assert set(s.shares.values()) == {0} and set(s.split.values()) == {0}


# --- rounding edge cases --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price_", "quantity", "expected"),
    [
        ("0.125", "1", "0.13"),
        ("0.124999", "1", "0.12"),
        ("0.135", "1", "0.14"),
        ("0.145", "1", "0.15"),
        ("3.335", "1", "3.34"),
        ("10.00", "0.333333", "3.33"),
        ("0.005", "1", "0.01"),
        ("0.004999", "1", "0.00"),
    ],
)
def test_half_up_ties_round_away_from_zero(price_, quantity, expected):
    r = rules(parts=[{"sku": "X", "price": price_}])
    assert run(r, parts=[{"sku": "X", "quantity": quantity}]).lines[0].amount == D(expected)


def test_negative_ties_round_away_from_zero_too():
    # 50 % of 0.25 = 0.125 → a discount of -0.13 (never -0.12, never -0.00)
    r = rules(
        services=[{"strategy": "flat", "code": "S", "price": "0.25"}],
        discounts={"member_levels": [{"level": "half", "percent": "50"}]},
    )
    s = run(r, services=[{"code": "S"}], member_level="half")
    assert amounts(s, LineKind.DISCOUNT) == [("member:half", D("-0.13"))]
    assert s.totals.total == D("0.12")


def test_jpy_rounds_half_up_to_whole_yen():
    r = rules(parts=[{"sku": "X", "price": "0.5"}, {"sku": "Y", "price": "1.49"}])
    s = run(
        r,
        currency="JPY",
        rates={"taken_at": "2026-11-25T00:00:00Z", "rates": [{"base": "CNY", "quote": "JPY", "rate": "1"}]},
        parts=[{"sku": "X", "quantity": "1"}, {"sku": "Y", "quantity": "1"}],
    )
    assert [line.amount for line in s.lines] == [D("1"), D("1")]


def test_no_negative_zero_anywhere():
    r = rules(
        services=[{"strategy": "flat", "code": "S", "price": "0.01"}],
        discounts={"member_levels": [{"level": "m", "percent": "10"}]},
    )
    s = run(r, services=[{"code": "S"}], member_level="m")
    dumped = s.model_dump_json()
    assert '"-0' not in dumped
    assert s.lines[-1].amount == 0 and s.lines[-1].amount.is_signed() is False


# --- a whole statement ----------------------------------------------------------------------


def test_a_whole_statement():
    r = rules(
        tax={"mode": "exclusive", "percent": "13"},
        split=[
            {"party": "platform", "share": "0.2"},
            {"party": "provider", "share": "0.3"},
            {"party": "engineer", "share": "0.5"},
        ],
    )
    s = run(
        r,
        reference="K1",
        currency="USD",
        rates=usd(),
        services=[{"code": "REPAIR", "minutes": 95}, {"code": "CLEAN"}, {"code": "FILTER-G", "quantity": "12"}],
        parts=[{"sku": "CAP", "quantity": "2"}, {"sku": "PIPE", "quantity": "3.5"}],
        conditions=["urban", "night", "rush"],
        travel_km="23.4",
        member_level="gold",
        referrals=4,
    )
    assert [(line.kind.value, line.code, line.amount, line.tax) for line in s.lines] == [
        ("service", "CLEAN", D("27.52"), D("3.58")),
        ("service", "FILTER-G", D("41.49"), D("5.39")),
        ("service", "FILTER-G", D("6.92"), D("0.90")),
        ("service", "REPAIR", D("11.06"), D("1.44")),
        ("service", "REPAIR", D("20.75"), D("2.70")),
        ("part", "CAP", D("12.59"), D("1.64")),
        ("part", "PIPE", D("18.78"), D("2.44")),
        ("adjustment", "urban", D("21.55"), D("2.80")),
        ("surcharge", "night", D("38.79"), D("5.04")),
        ("surcharge", "rush", D("6.92"), D("0.90")),
        ("surcharge", "travel", D("4.84"), D("0.63")),
        ("discount", "referral:3", D("-35.97"), D("-4.68")),
    ]
    t = s.totals
    assert (t.services, t.parts, t.adjustments, t.surcharges, t.discounts) == (
        D("107.74"),
        D("31.37"),
        D("21.55"),
        D("50.55"),
        D("-35.97"),
    )
    assert (t.subtotal, t.net, t.tax, t.total) == (D("175.24"), D("175.24"), D("22.78"), D("198.02"))
    assert s.split == {"platform": D("39.60"), "provider": D("59.41"), "engineer": D("99.01")}
    assert (s.reference, s.region, s.rules_version, s.tax.percent) == ("K1", "east", "t1", D("13"))
    labour = s.lines[4]
    assert labour.description == "Repair: labour, 95 min worked, 30 included, 75 min billed in 15-min steps"


def test_same_inputs_same_statement():
    kw = {"services": [{"code": "REPAIR", "minutes": 95}], "parts": [{"sku": "CAP", "quantity": "1"}]}
    assert run(**kw) == run(**kw)
    book = compile_rules(rules())
    assert price(book, request(**kw)) == price(rules(), request(**kw))


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "path"),
    [
        ({"split": [{"party": "a", "share": "0.5"}, {"party": "b", "share": "0.4"}]}, E.SHARES_SUM, "rules.split"),
        (
            {"split": [{"party": "a", "share": "1.5"}, {"party": "b", "share": "-0.5"}]},
            E.BAD_SHARE,
            "rules.split[1].share",
        ),
        (
            {"split": [{"party": "a", "share": "0.5"}, {"party": "a", "share": "0.5"}]},
            E.DUPLICATE_CODE,
            "rules.split[1].party",
        ),
        ({"parts": [{"sku": "X", "price": "-1"}]}, E.NEGATIVE_PRICE, "rules.parts[0].price"),
        (
            {"services": [{"strategy": "flat", "code": "S", "price": "-0.01"}]},
            E.NEGATIVE_PRICE,
            "rules.services[0].price",
        ),
        (
            {"services": [{"strategy": "hourly", "code": "H", "hourly_rate": "-5"}]},
            E.NEGATIVE_PRICE,
            "rules.services[0].hourly_rate",
        ),
        (
            {
                "services": [
                    {"strategy": "tiered", "code": "T", "mode": "volume", "tiers": [{"over": "0", "unit_price": "-1"}]}
                ]
            },
            E.NEGATIVE_PRICE,
            "rules.services[0].tiers[0].unit_price",
        ),
        (
            {"surcharges": [{"type": "fixed", "code": "f", "amount": "-1"}]},
            E.NEGATIVE_PRICE,
            "rules.surcharges[0].amount",
        ),
        (
            {
                "services": [
                    {
                        "strategy": "tiered",
                        "code": "T",
                        "mode": "volume",
                        "tiers": [{"over": "0", "up_to": "10", "unit_price": "1"}, {"over": "5", "unit_price": "1"}],
                    }
                ]
            },
            E.OVERLAPPING_TIERS,
            "rules.services[0].tiers[1].over",
        ),
        (
            {
                "services": [
                    {
                        "strategy": "tiered",
                        "code": "T",
                        "mode": "volume",
                        "tiers": [{"over": "0", "unit_price": "1"}, {"over": "10", "unit_price": "1"}],
                    }
                ]
            },
            E.OVERLAPPING_TIERS,
            "rules.services[0].tiers[1].over",
        ),
        (
            {
                "services": [
                    {
                        "strategy": "tiered",
                        "code": "T",
                        "mode": "volume",
                        "tiers": [
                            {"over": "0", "up_to": "10", "unit_price": "1"},
                            {"over": "0", "up_to": "10", "unit_price": "2"},
                        ],
                    }
                ]
            },
            E.OVERLAPPING_TIERS,
            "rules.services[0].tiers[1].over",
        ),
        (
            {
                "services": [
                    {
                        "strategy": "tiered",
                        "code": "T",
                        "mode": "volume",
                        "tiers": [{"over": "0", "up_to": "10", "unit_price": "1"}, {"over": "12", "unit_price": "1"}],
                    }
                ]
            },
            E.TIER_GAP,
            "rules.services[0].tiers[1].over",
        ),
        (
            {
                "services": [
                    {"strategy": "tiered", "code": "T", "mode": "volume", "tiers": [{"over": "1", "unit_price": "1"}]}
                ]
            },
            E.TIER_GAP,
            "rules.services[0].tiers[0].over",
        ),
        (
            {
                "services": [
                    {
                        "strategy": "tiered",
                        "code": "T",
                        "mode": "volume",
                        "tiers": [{"over": "5", "up_to": "5", "unit_price": "1"}],
                    }
                ]
            },
            E.BAD_TIER,
            "rules.services[0].tiers[0].up_to",
        ),
        (
            {"services": [{"strategy": "hourly", "code": "H", "hourly_rate": "5", "increment_minutes": 10}]},
            E.BAD_INCREMENT,
            "rules.services[0].increment_minutes",
        ),
        (
            {
                "services": [
                    {"strategy": "flat", "code": "S", "price": "1"},
                    {"strategy": "flat", "code": "S", "price": "2"},
                ]
            },
            E.DUPLICATE_CODE,
            "rules.services[1].code",
        ),
        ({"currency": "XYZ"}, E.UNKNOWN_CURRENCY, "rules.currency"),
        ({"adjustments": [{"code": "a", "percent": "-100"}]}, E.BAD_PERCENT, "rules.adjustments[0].percent"),
        (
            {"adjustments": [{"code": "a", "percent": "5", "applies_to": ["discount"]}]},
            E.BAD_APPLIES_TO,
            "rules.adjustments[0].applies_to",
        ),
        (
            {"surcharges": [{"type": "percent", "code": "s", "percent": "5", "applies_to": ["surcharge"]}]},
            E.BAD_APPLIES_TO,
            "rules.surcharges[0].applies_to",
        ),
        (
            {"discounts": {"member_levels": [{"level": "x", "percent": "101"}]}},
            E.BAD_PERCENT,
            "rules.discounts.member_levels[0].percent",
        ),
        (
            {
                "discounts": {
                    "referral_tiers": [{"min_referrals": 3, "percent": "10"}, {"min_referrals": 3, "percent": "20"}]
                }
            },
            E.DUPLICATE_CODE,
            "rules.discounts.referral_tiers[1].min_referrals",
        ),
        (
            {
                "discounts": {
                    "combine": "sum",
                    "member_levels": [{"level": "x", "percent": "60"}],
                    "referral_tiers": [{"min_referrals": 1, "percent": "50"}],
                }
            },
            E.BAD_PERCENT,
            "rules.discounts.combine",
        ),
        ({"tax": {"mode": "exclusive", "percent": "-1"}}, E.BAD_PERCENT, "rules.tax.percent"),
    ],
)
def test_invalid_rules(changes, code, path):
    with pytest.raises(PricingError) as err:
        compile_rules(rules(**changes))
    assert (err.value.code, err.value.path) == (code, path)
    with pytest.raises(PricingError):  # price() validates the rules as well
        price(rules(**changes), request())


@pytest.mark.parametrize(
    ("fields", "code", "path"),
    [
        ({"services": [{"code": "NOPE"}]}, E.UNKNOWN_SERVICE, "request.services[0].code"),
        (
            {"parts": [{"sku": "CAP", "quantity": "1"}, {"sku": "NOPE", "quantity": "1"}]},
            E.UNKNOWN_PART,
            "request.parts[1].sku",
        ),
        ({"currency": "XYZ"}, E.UNKNOWN_CURRENCY, "request.currency"),
        ({"currency": "USD"}, E.MISSING_RATE, "request.rates"),
        ({"currency": "EUR", "rates": usd()}, E.MISSING_RATE, "request.rates"),
        (
            {
                "currency": "USD",
                "rates": {"taken_at": "2026-11-25T00:00:00Z", "rates": [{"base": "CNY", "quote": "USD", "rate": "0"}]},
            },
            E.BAD_RATE,
            "request.rates.rates[0].rate",
        ),
        (
            {
                "currency": "USD",
                "rates": {
                    "taken_at": "2026-11-25T00:00:00Z",
                    "rates": [
                        {"base": "CNY", "quote": "USD", "rate": "0.14"},
                        {"base": "CNY", "quote": "USD", "rate": "0.15"},
                    ],
                },
            },
            E.BAD_RATE,
            "request.rates.rates[1]",
        ),
        ({"region": "south"}, E.REGION_MISMATCH, "request.region"),
        ({"services": [{"code": "CLEAN"}, {"code": "CLEAN"}]}, E.DUPLICATE_LINE, "request.services[1].code"),
        (
            {"parts": [{"sku": "CAP", "quantity": "1"}, {"sku": "CAP", "quantity": "2"}]},
            E.DUPLICATE_LINE,
            "request.parts[1].sku",
        ),
        ({"services": [{"code": "REPAIR"}]}, E.BAD_QUANTITY, "request.services[0].minutes"),
        (
            {"services": [{"code": "REPAIR", "minutes": 10, "quantity": "2"}]},
            E.BAD_QUANTITY,
            "request.services[0].quantity",
        ),
        ({"services": [{"code": "CLEAN", "minutes": 10}]}, E.BAD_QUANTITY, "request.services[0].minutes"),
        ({"services": [{"code": "CLEAN", "quantity": "0"}]}, E.BAD_QUANTITY, "request.services[0].quantity"),
        ({"parts": [{"sku": "CAP", "quantity": "-1"}]}, E.BAD_QUANTITY, "request.parts[0].quantity"),
        ({"travel_km": "-1"}, E.BAD_QUANTITY, "request.travel_km"),
        ({"member_level": "platinum"}, E.UNKNOWN_MEMBER_LEVEL, "request.member_level"),
    ],
)
def test_requests_the_rules_cannot_price(fields, code, path):
    with pytest.raises(PricingError) as err:
        price(rules(), request(**fields))
    assert (err.value.code, err.value.path) == (code, path)
    assert str(err.value).startswith(f"{code}: ")


def test_beyond_a_bounded_last_tier():
    r = rules(
        services=[
            {
                "strategy": "tiered",
                "code": "T",
                "mode": "volume",
                "tiers": [{"over": "0", "up_to": "10", "unit_price": "1"}],
            }
        ]
    )
    with pytest.raises(PricingError) as err:
        price(r, request(services=[{"code": "T", "quantity": "11"}]))
    assert err.value.code == E.BAD_QUANTITY


def test_pricing_error_survives_pickling():
    err = pickle.loads(pickle.dumps(PricingError(E.UNKNOWN_PART, "no such part", "request.parts[0].sku")))
    assert (err.code, err.message, err.path) == (E.UNKNOWN_PART, "no such part", "request.parts[0].sku")


# --- payloads: Decimal in, strings out, never a float ----------------------------------------


@pytest.mark.parametrize("bad", [1.5, 0.1, float("nan"), True])
def test_floats_are_rejected_in_python(bad):
    with pytest.raises(ValidationError) as err:
        PricingRequest.model_validate({"region": "east", "currency": "CNY", "parts": [{"sku": "CAP", "quantity": bad}]})
    assert err.value.errors()[0]["loc"] == ("parts", 0, "quantity")


def test_floats_are_rejected_in_json():
    body = '{"region": "east", "currency": "CNY", "parts": [{"sku": "CAP", "quantity": 1.5}]}'
    with pytest.raises(ValidationError, match="float 1.5 is not allowed"):
        PricingRequest.model_validate_json(body)
    data = copy.deepcopy(BASE)
    data["parts"][0]["price"] = 45.5
    with pytest.raises(ValidationError, match="not allowed for an exact amount"):
        RegionPricing.model_validate_json(json.dumps(data))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1.1234567", "abc"])
def test_other_inexact_inputs_are_rejected(value):
    data = copy.deepcopy(BASE)
    data["parts"][0]["price"] = value
    with pytest.raises(ValidationError):
        RegionPricing.model_validate(data)


def test_integers_and_strings_are_exact():
    r = RegionPricing.model_validate({**copy.deepcopy(BASE), "parts": [{"sku": "X", "price": 12}]})
    assert r.parts[0].price == D("12")
    assert RegionPricing.model_validate_json(r.model_dump_json()) == r


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError):
        RegionPricing.model_validate({**copy.deepcopy(BASE), "discount": {}})


def test_statement_json_round_trip_is_exact():
    s = run(
        rules(tax={"mode": "inclusive", "percent": "13"}),
        currency="USD",
        rates=usd(),
        services=[{"code": "REPAIR", "minutes": 95}],
        parts=[{"sku": "SCREW", "quantity": "3"}],
        conditions=["urban"],
        member_level="gold",
    )
    dumped = s.model_dump(mode="json")
    assert dumped["totals"]["total"] == format(s.totals.total, "f")
    assert dumped["lines"][1]["unit_price"] == "16.5960" and dumped["lines"][1]["quantity"] == "1.25"
    assert all(isinstance(v, str) for v in dumped["split"].values())
    back = Statement.model_validate(dumped)
    assert back == s
    assert Statement.model_validate_json(s.model_dump_json()) == s
    # the engine's unvalidated construction is indistinguishable from a validated model
    for built, validated in zip(s.lines, back.lines, strict=True):
        assert built.model_fields_set == validated.model_fields_set == set(StatementLine.model_fields)
        assert built.__dict__ == validated.__dict__
    changed = s.lines[0].model_copy(update={"amount": D("1.00")})
    assert (changed.amount, s.lines[0].amount) == (D("1.00"), back.lines[0].amount)
    assert s.lines[1].model_fields_set == set(StatementLine.model_fields)


def test_statement_through_the_temporal_pydantic_converter():
    from temporalio.contrib.pydantic import pydantic_data_converter

    s = run(currency="USD", rates=usd(), services=[{"code": "REPAIR", "minutes": 95}])
    converter = pydantic_data_converter.payload_converter
    payloads = converter.to_payloads([s])
    assert b'"amount":"20.75"' in payloads[0].data
    (back,) = converter.from_payloads(payloads, [Statement])
    assert back == s and back.totals.total == D("31.81")


def test_statements_are_frozen():
    s = run(services=[{"code": "CLEAN"}])
    with pytest.raises(ValidationError):
        s.lines[0].amount = D("0")  # type: ignore[misc]


def test_a_discount_never_makes_the_tax_or_the_total_negative():
    """Found by Hypothesis: three 0.01 lines (tax 16.67 % rounds to 0.00 each) and a −0.03
    discount whose own tax would round to −0.01, giving a −0.01 total on a 0.00 net."""
    services = [{"strategy": "flat", "code": c, "price": "0.01"} for c in ("A", "B", "C")]
    r = rules(
        services=services,
        discounts={"member_levels": [{"level": "silver", "percent": "83.34"}]},
        tax={"mode": "exclusive", "percent": "16.67"},
    )
    s = run(r, services=[{"code": c} for c in ("A", "B", "C")], member_level="silver")
    assert [line.amount for line in s.lines] == [D("0.01"), D("0.01"), D("0.01"), D("-0.03")]
    assert (s.totals.net, s.totals.tax, s.totals.total) == (D("0.00"), D("0.00"), D("0.00"))
    assert sum(line.tax for line in s.lines) == s.totals.tax


# --- coverage: warranty and contracts -------------------------------------------------------

VAT13 = {"mode": "exclusive", "percent": "13"}
WORK = {
    "services": [{"code": "REPAIR", "minutes": 95}, {"code": "CLEAN"}],
    "parts": [{"sku": "CAP", "quantity": "2"}],
    "conditions": ["urban", "night"],
    "travel_km": "23.4",
    "member_level": "gold",
}
CONTRACT_LABOUR = {"name": "contract SC-2026-0042", "covers": "labour"}
WARRANTY_PARTS = {"name": "warranty until 2027-03-31", "covers": "parts"}
WARRANTY_ALL = {"name": "warranty until 2027-03-31", "covers": "labour_and_parts"}


def lines_of(s: Statement) -> list[tuple]:
    return [(line.kind.value, line.code, line.amount, line.tax, line.coverage, line.covered_amount) for line in s.lines]


def test_labour_covered_by_a_contract_parts_charged():
    s = run(rules(tax=VAT13), **WORK, coverage=[CONTRACT_LABOUR])
    c = "contract SC-2026-0042"
    # Every service line is zero and names the contract; urban (+20 % of services) and night
    # (+30 % of services and adjustments) have a zero base and no line; travel is never covered;
    # gold -10 % of the travel; the discount's tax brings the tax to 13 % of 122.50 = 15.93.
    assert lines_of(s) == [
        ("service", "CLEAN", D("0.00"), D("0.00"), c, D("199.00")),
        ("service", "REPAIR", D("0.00"), D("0.00"), c, D("80.00")),
        ("service", "REPAIR", D("0.00"), D("0.00"), c, D("150.00")),
        ("part", "CAP", D("91.00"), D("11.83"), None, None),
        ("surcharge", "travel", D("35.00"), D("4.55"), None, None),
        ("discount", "member:gold", D("-3.50"), D("-0.45"), None, None),
    ]
    t = s.totals
    assert (t.services, t.parts, t.adjustments, t.surcharges, t.discounts) == (
        D("0.00"),
        D("91.00"),
        D("0.00"),
        D("0.00") + D("35.00"),
        D("-3.50"),
    )
    assert (t.net, t.tax, t.total) == (D("122.50"), D("15.93"), D("138.43"))
    clean, base, labour = s.lines[:3]
    # the list price stays visible: the unit price and amount are zero, list_unit_price is not
    assert (clean.unit_price, clean.list_unit_price, clean.quantity, clean.net, clean.gross) == (
        D("0.00"),
        D("199"),
        D("1"),
        D("0.00"),
        D("0.00"),
    )
    assert (labour.quantity, labour.list_unit_price, labour.rule) == (
        D("1.25"),
        D("120"),
        "services.REPAIR.hourly_rate",
    )
    assert base.description == "Repair: base fee"
    assert s.lines[3].list_unit_price is None  # not converted, not covered: as before


def test_parts_covered_by_the_warranty_labour_charged():
    s = run(rules(tax=VAT13), **WORK, coverage=[WARRANTY_PARTS])
    w = "warranty until 2027-03-31"
    # services 199 + 80 + 150 = 429; urban 85.80; night 30 % of 514.80 = 154.44; travel 35;
    # gold 10 % of 704.24 = 70.42; tax 13 % of 633.82 = 82.40 (the discount's -9.15 brings it there).
    assert lines_of(s) == [
        ("service", "CLEAN", D("199.00"), D("25.87"), None, None),
        ("service", "REPAIR", D("80.00"), D("10.40"), None, None),
        ("service", "REPAIR", D("150.00"), D("19.50"), None, None),
        ("part", "CAP", D("0.00"), D("0.00"), w, D("91.00")),
        ("adjustment", "urban", D("85.80"), D("11.15"), None, None),
        ("surcharge", "night", D("154.44"), D("20.08"), None, None),
        ("surcharge", "travel", D("35.00"), D("4.55"), None, None),
        ("discount", "member:gold", D("-70.42"), D("-9.15"), None, None),
    ]
    assert (s.totals.parts, s.totals.net, s.totals.tax, s.totals.total) == (
        D("0.00"),
        D("633.82"),
        D("82.40"),
        D("716.22"),
    )
    assert s.lines[3].list_unit_price == D("45.50") and s.lines[3].quantity == D("2")


@pytest.mark.parametrize(
    ("coverage", "labour_by", "parts_by"),
    [
        ([WARRANTY_PARTS, CONTRACT_LABOUR], "contract SC-2026-0042", "warranty until 2027-03-31"),
        ([CONTRACT_LABOUR, WARRANTY_PARTS], "contract SC-2026-0042", "warranty until 2027-03-31"),
        ([WARRANTY_ALL, CONTRACT_LABOUR], "warranty until 2027-03-31", "warranty until 2027-03-31"),
        ([CONTRACT_LABOUR, WARRANTY_ALL], "contract SC-2026-0042", "warranty until 2027-03-31"),
    ],
)
def test_labour_and_parts_both_covered_only_travel_is_charged(coverage, labour_by, parts_by):
    s = run(rules(tax=VAT13), **WORK, coverage=coverage)
    assert [(line.code, line.coverage) for line in s.lines if line.kind in ("service", "part")] == [
        ("CLEAN", labour_by),
        ("REPAIR", labour_by),
        ("REPAIR", labour_by),
        ("CAP", parts_by),
    ]
    # the first coverage (in request order) that covers a kind names its lines
    assert lines_of(s)[4:] == [
        ("surcharge", "travel", D("35.00"), D("4.55"), None, None),
        ("discount", "member:gold", D("-3.50"), D("-0.45"), None, None),
    ]
    assert (s.totals.net, s.totals.tax, s.totals.total) == (D("31.50"), D("4.10"), D("35.60"))
    assert sum(s.split.values()) == s.totals.total


def test_fixed_surcharges_and_discounts_on_parts_with_coverage():
    # rush (fixed) is charged; a discount that applies to parts has a zero base from covered parts
    r = rules(
        tax=VAT13,
        discounts={
            "member_levels": [{"level": "gold", "percent": "10"}],
            "applies_to": ["service", "part", "adjustment", "surcharge"],
        },
    )
    s = run(
        r, parts=[{"sku": "CAP", "quantity": "2"}], conditions=["rush"], member_level="gold", coverage=[WARRANTY_ALL]
    )
    assert lines_of(s) == [
        ("part", "CAP", D("0.00"), D("0.00"), "warranty until 2027-03-31", D("91.00")),
        ("surcharge", "rush", D("50.00"), D("6.50"), None, None),
        ("discount", "member:gold", D("-5.00"), D("-0.65"), None, None),
    ]
    assert s.totals.total == D("50.85")


def test_everything_covered_totals_zero_and_the_split_is_zero():
    s = run(
        rules(tax=VAT13), services=[{"code": "CLEAN"}], parts=[{"sku": "CAP", "quantity": "1"}], coverage=[WARRANTY_ALL]
    )
    assert s.totals.total == D("0.00") and set(s.split.values()) == {D("0.00")}
    assert set(s.shares.values()) == {D("0")}
    assert [line.covered_amount for line in s.lines] == [D("199.00"), D("45.50")]


def test_a_covered_minimum_charge_top_up_is_covered_too():
    # 30 min: base 80 + 0 h labour; minimum 150 → top-up 70, all paid by the contract
    s = run(rules(tax=VAT13), services=[{"code": "REPAIR", "minutes": 30}], coverage=[CONTRACT_LABOUR])
    assert [(line.description, line.amount, line.covered_amount) for line in s.lines] == [
        ("Repair: base fee", D("0.00"), D("80.00")),
        ("Repair: labour, 30 min worked, 30 included, 0 min billed in 15-min steps", D("0.00"), D("0.00")),
        ("Repair: top-up to the minimum charge of 150.00", D("0.00"), D("70.00")),
    ]
    assert s.lines[2].list_unit_price is None and s.totals.total == D("0.00")


def test_coverage_with_inclusive_tax_and_conversion():
    r = rules(tax={"mode": "inclusive", "percent": "13"})
    s = run(
        r,
        currency="USD",
        rates=usd(),
        services=[{"code": "CLEAN"}],
        parts=[{"sku": "CAP", "quantity": "2"}],
        coverage=[WARRANTY_PARTS],
    )
    clean, cap = s.lines
    # CAP: 2 × 45.50 CNY × 0.1383 = 12.5853 → 12.59 USD would have been charged (gross)
    assert (cap.unit_price, cap.list_unit_price, cap.amount, cap.covered_amount) == (
        D("0.00"),
        D("45.50"),
        D("0.00"),
        D("12.59"),
    )
    # CLEAN: 27.52 gross, 13/113 of it is tax: 3.17
    assert (clean.amount, clean.tax, clean.net, clean.list_unit_price) == (D("27.52"), D("3.17"), D("24.35"), D("199"))
    assert (s.totals.net, s.totals.tax, s.totals.total) == (D("24.35"), D("3.17"), D("27.52"))


def test_covered_statement_json_round_trip_is_exact():
    s = run(rules(tax=VAT13), **WORK, coverage=[WARRANTY_PARTS, CONTRACT_LABOUR])
    dumped = s.model_dump(mode="json")
    assert (
        dumped["lines"][0]["coverage"] == "contract SC-2026-0042" and dumped["lines"][0]["covered_amount"] == "199.00"
    )
    assert dumped["lines"][-1]["coverage"] is None and dumped["inputs"] is None
    back = Statement.model_validate(dumped)
    assert back == s
    for built, validated in zip(s.lines, back.lines, strict=True):
        assert built.__dict__ == validated.__dict__


@pytest.mark.parametrize(
    ("coverage", "error"),
    [
        ([{"name": "", "covers": "labour"}], "at least 1 character"),
        ([{"name": "x", "covers": "everything"}], "labour"),
        ([{"name": f"c{i}", "covers": "labour"} for i in range(9)], "at most 8"),
        ([{"name": "x" * 201, "covers": "parts"}], "at most 200"),
    ],
)
def test_malformed_coverage_is_refused(coverage, error):
    with pytest.raises(ValidationError, match=error):
        request(coverage=coverage)


# --- quoted services --------------------------------------------------------------------------

QUOTED = {"strategy": "quoted", "code": "REPAIR-COST", "description": "Repair (quoted)"}


def quoted_rules(**changes) -> RegionPricing:
    return rules(services=[*BASE["services"], QUOTED], **changes)


def test_a_quoted_service_is_priced_at_the_requested_amount():
    s = run(quoted_rules(tax=VAT13), services=[{"code": "REPAIR-COST", "amount": "380.50"}], conditions=["urban"])
    quote, urban = s.lines
    assert (quote.kind, quote.quantity, quote.unit, quote.unit_price, quote.amount, quote.tax, quote.rule) == (
        LineKind.SERVICE,
        D("1"),
        "job",
        D("380.50"),
        D("380.50"),
        D("49.47"),  # 49.465 ↑
        "services.REPAIR-COST.quoted",
    )
    assert quote.description == "Repair (quoted)"
    assert (urban.base, urban.amount) == (D("380.50"), D("76.10"))  # a service like any other
    assert s.totals.total == D("515.96")  # 456.60 + 49.47 + 9.89 (76.10 × 13 % = 9.893)


def test_a_quoted_amount_per_unit_converted_and_covered():
    s = run(quoted_rules(), services=[{"code": "REPAIR-COST", "amount": "100.005", "quantity": "2"}])
    assert s.lines[0].amount == D("200.01")
    usd_line = run(quoted_rules(), currency="USD", rates=usd(), services=[{"code": "REPAIR-COST", "amount": "380.50"}])
    # 380.50 CNY × 0.1383 = 52.62315 → 52.62 USD
    assert (usd_line.lines[0].list_unit_price, usd_line.lines[0].amount) == (D("380.50"), D("52.62"))
    covered = run(quoted_rules(), services=[{"code": "REPAIR-COST", "amount": "380.50"}], coverage=[CONTRACT_LABOUR])
    assert (covered.lines[0].amount, covered.lines[0].covered_amount, covered.lines[0].coverage) == (
        D("0.00"),
        D("380.50"),
        "contract SC-2026-0042",
    )
    zero = run(quoted_rules(), services=[{"code": "REPAIR-COST", "amount": "0"}])
    assert zero.lines[0].amount == D("0.00") and zero.totals.total == D("0.00")


@pytest.mark.parametrize(
    ("service", "code", "path"),
    [
        ({"code": "CLEAN", "amount": "10"}, E.BAD_AMOUNT, "request.services[0].amount"),
        ({"code": "REPAIR", "minutes": 30, "amount": "10"}, E.BAD_AMOUNT, "request.services[0].amount"),
        ({"code": "FILTER-V", "quantity": "2", "amount": "10"}, E.BAD_AMOUNT, "request.services[0].amount"),
        ({"code": "REPAIR-COST"}, E.BAD_AMOUNT, "request.services[0].amount"),
        ({"code": "REPAIR-COST", "amount": "-1"}, E.NEGATIVE_PRICE, "request.services[0].amount"),
        ({"code": "REPAIR-COST", "amount": "1", "minutes": 5}, E.BAD_QUANTITY, "request.services[0].minutes"),
        ({"code": "REPAIR-COST", "amount": "1", "quantity": "0"}, E.BAD_QUANTITY, "request.services[0].quantity"),
    ],
)
def test_amounts_only_for_quoted_services(service, code, path):
    with pytest.raises(PricingError) as err:
        price(quoted_rules(), request(services=[service]))
    assert (err.value.code, err.value.path) == (code, path)


def test_a_quoted_amount_is_exact():
    with pytest.raises(ValidationError, match="float"):
        request(services=[{"code": "REPAIR-COST", "amount": 380.5}])
    with pytest.raises(ValidationError):
        request(services=[{"code": "REPAIR-COST", "amount": "1.1234567"}])  # more than 6 places
    assert request(services=[{"code": "REPAIR-COST", "amount": 380}]).services[0].amount == D("380")


# --- coverage, as a property -----------------------------------------------------------------

COVERAGE_SETS = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["warranty", "contract A", "contract B"]),
            "covers": st.sampled_from(["labour", "parts", "labour_and_parts"]),
        }
    ),
    min_size=1,
    max_size=3,
)
KINDS_COVERED = {"labour": ("service",), "parts": ("part",), "labour_and_parts": ("service", "part")}


@SETTINGS
@given(rule_sets(), requests(), COVERAGE_SETS)
def test_coverage_zeroes_exactly_the_covered_base_lines(r, req, coverage):
    """Over random rules and requests: each base line of the covered statement is the uncovered
    statement's line, either unchanged or zero with ``covered_amount`` = its amount (the first
    coverage of its kind named); the lines still add up to the totals."""
    plain = price(r, req)
    covered = price(r, PricingRequest.model_validate({**req.model_dump(), "coverage": coverage}))
    first: dict[str, str] = {}
    for c in coverage:
        for kind in KINDS_COVERED[c["covers"]]:
            first.setdefault(kind, c["name"])
    base = [line for line in covered.lines if line.kind in ("service", "part")]
    assert len(base) == len([line for line in plain.lines if line.kind in ("service", "part")])
    for was, now in zip(plain.lines, base, strict=False):
        assert (was.kind, was.code, was.description, was.quantity) == (
            now.kind,
            now.code,
            now.description,
            now.quantity,
        )
        if was.kind.value in first:
            assert (now.coverage, now.covered_amount, now.amount, now.tax, now.unit_price) == (
                first[was.kind.value],
                was.amount,
                0,
                0,
                0,
            )
        else:
            assert now == was
    t = covered.totals
    assert sum((line.gross for line in covered.lines), D(0)) == t.total >= 0
    assert sum((line.tax for line in covered.lines), D(0)) == t.tax
    assert sum(covered.split.values(), D(0)) == t.total
    assert Statement.model_validate(covered.model_dump(mode="json")) == covered


# --- night and holiday from a region's calendar (domain.calendar.conditions_at) ---------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICE_CN = BusinessCalendar.weekly(
    "Asia/Shanghai",
    ["09:00-12:00", "13:00-18:00"],
    "mon-fri",
    holiday_country="CN",
    closed_dates=["2026-12-24"],
    extra_working_dates=["2026-12-13"],
)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-12-11 10:00", ()),  # a Friday, working hours
        ("2026-12-11 12:30", ()),  # the lunch break is not night
        ("2026-12-11 09:00", ()),  # opening: inclusive
        ("2026-12-11 17:59:59", ()),
        ("2026-12-11 18:00", ("night",)),  # closing: exclusive
        ("2026-12-11 21:00", ("night",)),
        ("2026-12-11 08:59:59", ("night",)),
        ("2026-12-11 00:30", ("night",)),
        ("2026-12-12 10:00", ("holiday",)),  # Saturday: the calendar does not work it
        ("2026-12-12 21:00", ("holiday",)),  # a holiday night is a holiday, not both
        ("2026-10-01 10:00", ("holiday",)),  # National Day, a Thursday
        ("2026-12-24 10:00", ("holiday",)),  # a closed date
        ("2026-12-13 10:00", ()),  # Sunday, but a make-up working day
        ("2026-12-13 20:00", ("night",)),
    ],
)
def test_conditions_at_names_night_and_holiday(local, expected):
    when = datetime.fromisoformat(local).replace(tzinfo=SHANGHAI)
    assert conditions_at(OFFICE_CN, when) == expected


def test_conditions_at_reads_the_instant_in_the_calendars_timezone():
    assert conditions_at(OFFICE_CN, datetime(2026, 12, 11, 13, 0, tzinfo=UTC)) == ("night",)  # 21:00 in Shanghai
    assert conditions_at(OFFICE_CN, datetime(2026, 12, 11, 2, 0, tzinfo=UTC)) == ()  # 10:00
    assert conditions_at(OFFICE_CN, datetime(2026, 12, 11, 16, 30, tzinfo=UTC)) == ("holiday",)  # Sat 00:30
    always = BusinessCalendar.always_open("Asia/Shanghai")
    assert conditions_at(always, datetime(2026, 12, 12, 3, 0, tzinfo=SHANGHAI)) == ()
    with pytest.raises(ValueError, match="timezone-aware"):
        conditions_at(OFFICE_CN, datetime(2026, 12, 11, 21, 0))
