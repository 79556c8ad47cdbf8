"""Exact money arithmetic: the Decimal context, rounding to a currency, rounded division,
and largest-remainder allocation of integer units."""

from collections.abc import Sequence
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)

from models.pricing import CurrencySpec

#: Every pricing computation runs in this context (``decimal.localcontext``), never in the
#: thread's ambient one. 64 digits hold any product of the bounded inputs exactly (the
#: largest: price 18 digits × rate 20 × quantity 15), so the only rounding is per line.
CONTEXT = Context(prec=64, traps=[InvalidOperation, DivisionByZero, Overflow])

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
HUNDREDTH = Decimal("0.01")


def round_money(value: Decimal, spec: CurrencySpec) -> Decimal:
    """``value`` rounded to the currency's minor unit with its rounding mode."""
    return value.quantize(spec.quantum, rounding=spec.rounding)


def round_ratio(numerator: Decimal, denominator: Decimal, spec: CurrencySpec) -> Decimal:
    """``numerator / denominator`` rounded to the currency, as if the exact quotient were
    rounded once (the inclusive-tax extraction: amount × p / (100 + p)).

    The quotient is taken to 64 digits, then quantized. That cannot round differently from
    the exact quotient x: with the bounded inputs (amounts < 10^18 with ≤ 6 places,
    percentages with ≤ 4) x is a fraction whose distance to any rounding tie t is either 0 —
    then x = t is a short decimal, computed exactly — or at least 10^-30, while the 64-digit
    quotient is within 10^-40 of x. (A property test checks it against ``Fraction``.)"""
    return (numerator / denominator).quantize(spec.quantum, spec.rounding)


def allocate(units: int, weights: Sequence[int]) -> list[int]:
    """Split ``units`` in proportion to ``weights`` (Σ weights > 0) so that the parts sum to
    ``units`` exactly: each part gets the floor of its exact share, and the units left over
    go one each to the largest remainders; equal remainders go to the earlier weight."""
    whole = sum(weights)
    floors: list[int] = []
    order: list[tuple[int, int]] = []
    for i, w in enumerate(weights):
        q, r = divmod(units * w, whole)
        floors.append(q)
        order.append((-r, i))
    left = units - sum(floors)
    if left:
        order.sort()
        for _, i in order[:left]:
            floors[i] += 1
    return floors
