"""``LinePricer``: turns a priced quantity or a percentage into a finished statement line —
converted into the billing currency, rounded once, taxed per line."""

from decimal import Decimal

from models.pricing import (
    Coverage,
    CoverageScope,
    CurrencySpec,
    ExchangeRate,
    LineKind,
    RateSnapshot,
    StatementLine,
    TaxMode,
    TaxRule,
    trusted_builder,
)

from .errors import PricingError
from .errors import PricingErrorCode as E
from .money import HUNDRED, HUNDREDTH, ONE, ZERO, round_ratio

_line = trusted_builder(StatementLine)
KINDS = tuple(LineKind)
_DISCOUNT = LineKind.DISCOUNT


class LinePricer:
    """Builds the lines of one request: knows the billing currency's rounding, the
    price-list → billing rate (``None``: same currency) and the region's tax, and keeps the
    running amount and tax per kind of line."""

    __slots__ = (
        "spec",
        "quantum",
        "rounding",
        "rate",
        "used",
        "tax_percent",
        "tax_inclusive",
        "tax_rate",
        "amounts",
        "taxes",
        "cover",
        "zero",
    )

    def __init__(
        self,
        spec: CurrencySpec,
        rate: Decimal | None,
        used: tuple[ExchangeRate, ...],
        tax: TaxRule,
        cover: dict[LineKind, str] | None = None,
    ) -> None:
        self.spec = spec
        self.quantum, self.rounding = spec.quantum, spec.rounding
        self.rate = rate
        self.used = used
        self.tax_percent = tax.percent
        self.tax_inclusive = tax.mode == TaxMode.INCLUSIVE
        self.tax_rate = tax.percent * HUNDREDTH
        zero = ZERO.quantize(spec.quantum)  # 0.00: sums show the currency's places even when empty
        self.zero = zero
        self.cover = cover or _NO_COVER  # kind → the name of the coverage that pays for it
        self.amounts = dict.fromkeys(KINDS, zero)  # Σ amount per kind so far
        self.taxes = dict.fromkeys(KINDS, zero)  # Σ tax per kind so far

    def priced(
        self, kind: LineKind, code: str, description: str, quantity: Decimal, unit: str, list_price: Decimal, rule: str
    ) -> StatementLine:
        """``quantity`` × ``list_price`` converted to the billing currency, rounded; zero with
        the list price and the amount kept when a coverage pays for ``kind``."""
        if self.rate is None:
            unit_price, listed = list_price, None
        else:
            unit_price, listed = list_price * self.rate, list_price
        amount = (quantity * unit_price).quantize(self.quantum, self.rounding)
        if self.cover:
            name = self.cover.get(kind)
            if name is not None:
                z = self.zero
                return self.line(
                    kind, code, description, quantity, unit, z, z, rule, None, None, list_price, name, amount
                )
        if self.tax_inclusive:
            return self.line(kind, code, description, quantity, unit, unit_price, amount, rule, None, None, listed)
        # the common case, inlined (one call less per line): exclusive tax on a charge
        tax = (amount * self.tax_rate).quantize(self.quantum, self.rounding)
        self.amounts[kind] += amount
        self.taxes[kind] += tax
        return _line(
            {
                "kind": kind,
                "code": code,
                "description": description,
                "quantity": quantity,
                "unit": unit,
                "unit_price": unit_price,
                "amount": amount,
                "rule": rule,
                "percent": None,
                "base": None,
                "list_unit_price": listed,
                "net": amount,
                "tax": tax,
                "gross": amount + tax,
                "coverage": None,
                "covered_amount": None,
            }
        )

    def fee(self, kind: LineKind, code: str, description: str, unit: str, amount: Decimal, rule: str) -> StatementLine:
        """One unit of ``amount``, already in the billing currency and rounded (the minimum-charge
        top-up); zero, keeping the amount, when a coverage pays for ``kind``."""
        name = self.cover.get(kind) if self.cover else None
        if name is not None:
            z = self.zero
            return self.line(kind, code, description, ONE, unit, z, z, rule, None, None, None, name, amount)
        return self.line(kind, code, description, ONE, unit, amount, amount, rule, None, None, None)

    def percent(
        self,
        kind: LineKind,
        code: str,
        description: str,
        percent: Decimal,
        base: Decimal,
        rule: str,
        negate: bool = False,
    ) -> StatementLine:
        """``percent`` % of ``base`` (already in the billing currency), rounded; a discount
        is ``negate``d. Quantity 1 and unit price = amount."""
        amount = (base * percent * HUNDREDTH).quantize(self.quantum, self.rounding)
        if negate:
            amount = ZERO - amount  # never -0.00
        return self.line(kind, code, description, ONE, "", amount, amount, rule, percent, base, None)

    def convert(self, list_amount: Decimal) -> Decimal:
        """A price-list amount in the billing currency, rounded."""
        value = list_amount if self.rate is None else list_amount * self.rate
        return value.quantize(self.quantum, self.rounding)

    def _tax_of(self, amount: Decimal) -> Decimal:
        if self.tax_inclusive:
            return round_ratio(amount * self.tax_percent, HUNDRED + self.tax_percent, self.spec)
        return (amount * self.tax_rate).quantize(self.quantum, self.rounding)

    def line(
        self,
        kind: LineKind,
        code: str,
        description: str,
        quantity: Decimal,
        unit: str,
        unit_price: Decimal,
        amount: Decimal,
        rule: str,
        percent: Decimal | None,
        base: Decimal | None,
        list_unit_price: Decimal | None,
        coverage: str | None = None,
        covered_amount: Decimal | None = None,
    ) -> StatementLine:
        """The finished line with its tax, rounded per line.

        Exclusive: ``tax = amount × p/100``, ``gross = amount + tax``.
        Inclusive: ``amount`` is gross; ``tax = amount × p/(100+p)``, ``net = amount − tax``."""
        if kind is _DISCOUNT:
            # A discount's tax is what brings the statement's tax so far to the tax of its
            # amount so far, rounded once: rounding a negative line on its own could push the
            # tax (and so the total) below zero while the net is not (Hypothesis found it).
            so_far = sum(self.amounts.values(), amount)
            tax = self._tax_of(so_far) - sum(self.taxes.values(), ZERO)
            net, gross = (amount - tax, amount) if self.tax_inclusive else (amount, amount + tax)
        elif self.tax_inclusive:
            tax = self._tax_of(amount)
            net, gross = amount - tax, amount
        else:  # the common case, inlined: exclusive tax on a charge
            tax = (amount * self.tax_rate).quantize(self.quantum, self.rounding)
            net, gross = amount, amount + tax
        self.amounts[kind] += amount
        self.taxes[kind] += tax
        return _line(
            {
                "kind": kind,
                "code": code,
                "description": description,
                "quantity": quantity,
                "unit": unit,
                "unit_price": unit_price,
                "amount": amount,
                "rule": rule,
                "percent": percent,
                "base": base,
                "list_unit_price": list_unit_price,
                "net": net,
                "tax": tax,
                "gross": gross,
                "coverage": coverage,
                "covered_amount": covered_amount,
            }
        )


def line_pricer(
    source: str, spec: CurrencySpec, snapshot: RateSnapshot | None, tax: TaxRule, coverage: tuple[Coverage, ...] = ()
) -> LinePricer:
    """The pricer for one request: finds the price-list → billing rate in the snapshot and
    which coverage pays for which kind of base line."""
    rate, used = _rate(source, spec.code, snapshot)
    return LinePricer(spec, rate, used, tax, _cover(coverage) if coverage else None)


_NO_COVER: dict[LineKind, str] = {}  # shared, never written
_COVERS = {
    CoverageScope.LABOUR: (LineKind.SERVICE,),
    CoverageScope.PARTS: (LineKind.PART,),
    CoverageScope.LABOUR_AND_PARTS: (LineKind.SERVICE, LineKind.PART),
}


def _cover(coverage: tuple[Coverage, ...]) -> dict[LineKind, str]:
    """Kind of base line → the first coverage (in request order) that pays for it. Labour is
    every service line; adjustments, surcharges and discounts are never covered themselves."""
    cover: dict[LineKind, str] = {}
    for c in coverage:
        for kind in _COVERS[c.covers]:
            cover.setdefault(kind, c.name)
    return cover


def _rate(source: str, target: str, snapshot: RateSnapshot | None) -> tuple[Decimal | None, tuple[ExchangeRate, ...]]:
    """The snapshot's ``source`` → ``target`` rate (``None`` for the same currency)."""
    if source == target:
        return None, ()
    chosen: ExchangeRate | None = None
    for i, r in enumerate(snapshot.rates if snapshot is not None else ()):
        if r.base != source or r.quote != target:
            continue
        if chosen is None:
            if r.rate <= ZERO:
                raise PricingError(E.BAD_RATE, f"rate {r.rate} is not positive", f"request.rates.rates[{i}].rate")
            chosen = r
        elif r.rate != chosen.rate:
            raise PricingError(
                E.BAD_RATE, f"the snapshot has two different {source}→{target} rates", f"request.rates.rates[{i}]"
            )
    if chosen is None:
        raise PricingError(E.MISSING_RATE, f"the rate snapshot has no {source}→{target} rate", "request.rates")
    return chosen.rate, (chosen,)
