"""Settlement benchmarks: the pricing engine's statements/s on one core, against a bare
Decimal floor measured in the same run and the design goal (≥ 20,000 statements/s/core).

    .venv/bin/python bench/settlement.py [--seconds 6]

The statement is the goal's: 3 service lines (an hourly repair: base fee + labour; a flat
package), 4 parts, 2 surcharges (night, travel distance), a discount (the better of a member
level and a referral tier), 13 % exclusive VAT, a CNY price list billed in USD from a rate
snapshot, and a 3-way revenue split — 10 lines. A heavier statement (17 lines) is timed too.
The floor does the same number of Decimal line computations (quantity × price, round, tax,
round, sums, a 3-way split) as a bare loop with no rules and no models: what pricing would
cost if it were nothing but arithmetic.

Rounds alternate floor / engine so machine noise hits both alike; the best round counts.
Pure CPU in one thread, so one core; rates are per CPU second (``time.process_time``).
``pricing_benchmark(seconds)`` returns the figures; ``main()`` prints them (later sections
— stock reservations on PostgreSQL, bench/inventory.py — plug in there).
"""

import argparse
import sys
import time
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.pricing import compile_rules, price  # noqa: E402
from models.pricing import PricingRequest, RegionPricing  # noqa: E402

GOAL_PER_S = 20_000
ROUNDS = 3


def realistic_rules() -> RegionPricing:
    return RegionPricing.model_validate(
        {
            "region": "east",
            "version": "2026-11",
            "currency": "CNY",
            "services": [
                {
                    "strategy": "hourly",
                    "code": "AC-REPAIR",
                    "description": "Air-con repair",
                    "base_fee": "80",
                    "hourly_rate": "120",
                    "increment_minutes": 15,
                    "included_minutes": 30,
                    "minimum_charge": "150",
                },
                {"strategy": "flat", "code": "AC-CLEAN", "description": "Air-con cleaning", "price": "199"},
                {
                    "strategy": "tiered",
                    "code": "FILTER",
                    "description": "Filter swap",
                    "mode": "graduated",
                    "tiers": [
                        {"over": "0", "up_to": "10", "unit_price": "30"},
                        {"over": "10", "up_to": "50", "unit_price": "25"},
                        {"over": "50", "unit_price": "20"},
                    ],
                },
                {"strategy": "flat", "code": "INSPECT", "description": "Inspection", "price": "60"},
            ],
            "parts": [
                {"sku": "CAP-35UF", "name": "Capacitor 35 µF", "price": "45.50"},
                {"sku": "FAN-M", "name": "Fan motor", "price": "268"},
                {"sku": "PIPE-CU", "name": "Copper pipe", "unit": "m", "price": "38.80"},
                {"sku": "GAS-R32", "name": "R32 refrigerant", "unit": "kg", "price": "95"},
                {"sku": "VALVE", "name": "Service valve", "price": "22"},
            ],
            "adjustments": [
                {"code": "urban", "description": "Urban premium", "when": "urban", "percent": "20"},
                {"code": "tier3", "description": "Lower-tier city", "when": "tier3_city", "percent": "-10"},
            ],
            "surcharges": [
                {"type": "percent", "code": "night", "description": "Night work", "when": "night", "percent": "30"},
                {"type": "fixed", "code": "rush", "description": "Rush call-out", "when": "rush", "amount": "50"},
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
                "member_levels": [{"level": "silver", "percent": "5"}, {"level": "gold", "percent": "10"}],
                "referral_tiers": [{"min_referrals": 3, "percent": "20"}, {"min_referrals": 5, "percent": "30"}],
            },
            "tax": {"mode": "exclusive", "percent": "13"},
            "split": [
                {"party": "platform", "share": "0.2"},
                {"party": "provider", "share": "0.3"},
                {"party": "engineer", "share": "0.5"},
            ],
        }
    )


def realistic_request() -> PricingRequest:
    """The statement of the design goal: 3 service lines (an hourly repair: base fee +
    labour; a flat package), 4 parts, 2 surcharges (night, travel), a discount (the better of
    gold member and 4 referrals), VAT, CNY → USD, a 3-way split: 10 lines."""
    return PricingRequest.model_validate(
        {
            "reference": "K0000000000BENCH",
            "region": "east",
            "currency": "USD",
            "services": [{"code": "AC-REPAIR", "minutes": 95}, {"code": "AC-CLEAN"}],
            "parts": [
                {"sku": "CAP-35UF", "quantity": "2"},
                {"sku": "FAN-M", "quantity": "1"},
                {"sku": "PIPE-CU", "quantity": "3.5"},
                {"sku": "GAS-R32", "quantity": "0.8"},
            ],
            "conditions": ["night"],
            "travel_km": "23.4",
            "member_level": "gold",
            "referrals": 4,
            "rates": {
                "taken_at": "2026-11-25T08:00:00Z",
                "source": "bench",
                "rates": [{"base": "CNY", "quote": "USD", "rate": "0.1383"}],
            },
        }
    )


def heavy_request() -> PricingRequest:
    """A bigger ticket on the same rules: + a graduated tier over 3 tiers, an inspection,
    a fifth part, the urban premium and a rush fee: 17 lines."""
    base = realistic_request()
    return base.model_copy(
        update={
            "services": (
                *base.services,
                *PricingRequest.model_validate(
                    {
                        "region": "east",
                        "currency": "USD",
                        "services": [{"code": "FILTER", "quantity": "60"}, {"code": "INSPECT"}],
                    }
                ).services,
            ),
            "parts": (
                *base.parts,
                *PricingRequest.model_validate(
                    {"region": "east", "currency": "USD", "parts": [{"sku": "VALVE", "quantity": "2"}]}
                ).parts,
            ),
            "conditions": ("night", "urban", "rush"),
        }
    )


def _floor(pairs: list[tuple[Decimal, Decimal]], shares: list[Decimal]) -> Callable[[], Decimal]:
    """The same number of line computations as bare Decimal arithmetic."""
    cent, vat, zero = Decimal("0.01"), Decimal("0.13"), Decimal(0)

    def statement() -> Decimal:
        net = tax = zero
        for qty, unit_price in pairs:
            amount = (qty * unit_price).quantize(cent, ROUND_HALF_UP)
            line_tax = (amount * vat).quantize(cent, ROUND_HALF_UP)
            net += amount
            tax += line_tax
        total = net + tax
        return sum([(total * s).quantize(cent, ROUND_HALF_UP) for s in shares], zero)

    return statement


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per CPU second of ``fn`` over about ``seconds`` of CPU time (batches of 200
    calls). CPU time, not wall time: a statement is pure CPU work in one thread, so this is
    the per-core rate, and other processes on the machine do not count against it."""
    calls, start = 0, time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        calls += 200
        now = time.process_time()
        if now >= deadline:
            return calls / (now - start)


def pricing_benchmark(seconds: float = 6.0) -> dict:
    """Best-of-rounds statements/s (per CPU second) of the engine with precompiled rules, of
    the engine validating the rules on every call, of the bare Decimal floor, and of the
    engine on a heavier statement."""
    rules, request, heavy = realistic_rules(), realistic_request(), heavy_request()
    book = compile_rules(rules)
    statement, big = price(book, request), price(book, heavy)
    pairs = [(line.quantity, line.unit_price) for line in statement.lines]
    runs: dict[str, Callable[[], object]] = {
        "floor": _floor(pairs, [s.share for s in rules.split]),
        "engine": lambda: price(book, request),
        "validating": lambda: price(rules, request),
        "heavy": lambda: price(book, heavy),
    }
    for fn in runs.values():  # warm up
        _rate(fn, 0.1)
    slot = seconds / ROUNDS / len(runs)
    best = dict.fromkeys(runs, 0.0)
    for _ in range(ROUNDS):
        for name, fn in runs.items():
            best[name] = max(best[name], _rate(fn, slot))
    return {
        "lines_per_statement": len(statement.lines),
        "statement_total": f"{statement.totals.total} {statement.currency}",
        "statements_per_s": round(best["engine"]),
        "us_per_statement": round(1e6 / best["engine"], 1),
        "statements_per_s_validating_rules": round(best["validating"]),
        "heavy_lines": len(big.lines),
        "heavy_statements_per_s": round(best["heavy"]),
        "floor_per_s": round(best["floor"]),
        "ratio_to_floor": round(best["engine"] / best["floor"], 3),
        "goal_per_s": GOAL_PER_S,
        "ratio_to_goal": round(best["engine"] / GOAL_PER_S, 2),
    }


def print_pricing(r: dict) -> None:
    n, heavy = r["lines_per_statement"], r["heavy_lines"]
    print("== pricing engine: statements per CPU second (one core) ==")
    print(f"  statement: {n} lines, total {r['statement_total']}")
    print(f"  engine, rules compiled once       {r['statements_per_s']:>9,} /s  ({r['us_per_statement']} µs each)")
    print(f"  engine, rules validated each call {r['statements_per_s_validating_rules']:>9,} /s")
    print(f"  engine, heavier statement ({heavy} l.) {r['heavy_statements_per_s']:>9,} /s")
    print(f"  floor: bare Decimal loop, {n} lines {r['floor_per_s']:>9,} /s")
    print(f"  ratio engine / floor              {r['ratio_to_floor']:>9}")
    verdict = "goal met" if r["ratio_to_goal"] >= 1 else "GOAL NOT MET"
    print(f"  ratio engine / goal ({r['goal_per_s']:,}/s)    {r['ratio_to_goal']:>9}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="time for the pricing section")
    args = parser.parse_args()
    print_pricing(pricing_benchmark(args.seconds))
    # Second section: stock reservations/s under contention on PostgreSQL.
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import inventory  # noqa: PLC0415

    print()
    inventory.main(["--rounds", "2"])


if __name__ == "__main__":
    main()
