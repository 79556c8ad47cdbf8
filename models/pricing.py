"""Pricing payloads: a region's price rules, a pricing request, and the statement.

Plain Pydantic v2 models that travel through Temporal (``pydantic_data_converter``) and
over HTTP. The rules here are *shapes*; what makes a rule set valid (shares summing to 1,
tiers that do not overlap, known currencies…) is checked by ``domain.pricing`` and
reported as ``PricingError``.

Money and every other exact number is ``Decimal``:

* on input a ``float`` (Python or JSON number with a fraction) is a validation error —
  send strings (``"12.50"``) or integers;
* in JSON mode every such number is dumped as a string in plain notation, so
  ``Model.model_validate(m.model_dump(mode="json")) == m`` exactly.

The rounding table ``CURRENCIES`` is the single source of truth for minor units and the
rounding mode of each currency.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

# ---------------------------------------------------------------------------------------
# Currencies and their rounding
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrencySpec:
    """How amounts in one currency are rounded: to ``decimals`` places with ``rounding``."""

    code: str
    decimals: int
    rounding: str = ROUND_HALF_UP
    quantum: Decimal = field(init=False)  # the minor unit: 0.01, or 1 for JPY
    scale: Decimal = field(init=False)  # minor units per unit: 100, or 1 for JPY

    def __post_init__(self) -> None:
        if self.rounding not in (ROUND_HALF_UP, ROUND_HALF_EVEN):
            raise ValueError(f"{self.code}: unsupported rounding {self.rounding}")
        object.__setattr__(self, "quantum", Decimal(1).scaleb(-self.decimals))
        object.__setattr__(self, "scale", Decimal(10**self.decimals))


#: The rounding table. One mode per currency, applied to every statement line.
#: ROUND_HALF_UP rounds ties away from zero (0.125 → 0.13, -0.125 → -0.13).
CURRENCIES: Mapping[str, CurrencySpec] = MappingProxyType(
    {
        "CNY": CurrencySpec("CNY", 2, ROUND_HALF_UP),
        "USD": CurrencySpec("USD", 2, ROUND_HALF_UP),
        "EUR": CurrencySpec("EUR", 2, ROUND_HALF_UP),
        "GBP": CurrencySpec("GBP", 2, ROUND_HALF_UP),
        "HKD": CurrencySpec("HKD", 2, ROUND_HALF_UP),
        "SGD": CurrencySpec("SGD", 2, ROUND_HALF_UP),
        "JPY": CurrencySpec("JPY", 0, ROUND_HALF_UP),
        "KRW": CurrencySpec("KRW", 0, ROUND_HALF_UP),
    }
)

# ---------------------------------------------------------------------------------------
# Exact numbers
# ---------------------------------------------------------------------------------------


def _reject_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f'float {value!r} is not allowed for an exact amount; send a string such as "12.50"')
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


def _plain(value: Decimal) -> str:
    return format(value, "f")


#: A Decimal that refuses floats and is a string in JSON.
ExactDecimal = Annotated[
    Decimal,
    BeforeValidator(_reject_float),
    PlainSerializer(_plain, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["12.50"]}),
]
#: Any amount on a statement (unbounded precision: converted unit prices may carry more
#: places than the currency; line amounts are always rounded to the currency).
Money = ExactDecimal
#: A price, fee or amount in a rule set (at most 6 decimal places).
Price = Annotated[ExactDecimal, Field(max_digits=18, decimal_places=6)]
#: A quantity of units, kilometres… (at most 6 decimal places).
Quantity = Annotated[ExactDecimal, Field(max_digits=15, decimal_places=6)]
#: A percentage: "20" means 20 %.
Percent = Annotated[ExactDecimal, Field(max_digits=9, decimal_places=4)]
#: A fraction of a whole: "0.25"; the split's shares sum to exactly 1.
Share = Annotated[ExactDecimal, Field(max_digits=9, decimal_places=8)]
#: An exchange rate: 1 unit of ``base`` is ``rate`` units of ``quote``.
Rate = Annotated[ExactDecimal, Field(max_digits=20, decimal_places=10)]

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$", max_length=64)]


class LineKind(StrEnum):
    """What produced a statement line; also the stages of pricing, in order."""

    SERVICE = "service"
    PART = "part"
    ADJUSTMENT = "adjustment"
    SURCHARGE = "surcharge"
    DISCOUNT = "discount"

    # Hash like the string it equals (Enum's default hashes the *name* in Python code):
    # consistent with ``LineKind.PART == "part"`` and fast as a dict key.
    __hash__ = str.__hash__


class TaxMode(StrEnum):
    EXCLUSIVE = "exclusive"  # prices are net; tax is added per line
    INCLUSIVE = "inclusive"  # prices are gross; tax is extracted per line


class TierMode(StrEnum):
    VOLUME = "volume"  # every unit at the price of the tier the whole quantity falls in
    GRADUATED = "graduated"  # each tier's units at that tier's price


class CoverageScope(StrEnum):
    """What a warranty or a service contract pays for: service lines (labour), part lines, or both."""

    LABOUR = "labour"
    PARTS = "parts"
    LABOUR_AND_PARTS = "labour_and_parts"


class DiscountCombine(StrEnum):
    BEST = "best"  # only the larger of member and referral discount applies
    SUM = "sum"  # both apply, each on the same base


M = TypeVar("M", bound=BaseModel)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def trusted_builder(cls: type[M]) -> Callable[[dict[str, Any]], M]:
    """A fast constructor for ``cls`` *without validation*, for results the pricing engine
    computed itself: ``build(values)`` takes every field, already of the right type, and the
    dict becomes the instance's ``__dict__``. ``model_construct`` does the same at 3× the
    cost, which alone kept the engine under its 20,000 statements/s goal. Tests check that
    every statement equals its validated JSON round trip."""
    fields = set(cls.__pydantic_fields__)
    count = len(fields)
    new, set_dict = object.__new__, BaseModel.__dict__["__dict__"].__set__
    set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
    set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
    set_private = BaseModel.__dict__["__pydantic_private__"].__set__

    def build(values: dict[str, Any]) -> M:
        if len(values) != count:
            missing, unknown = sorted(fields - set(values)), sorted(set(values) - fields)
            raise TypeError(f"{cls.__name__}: missing {missing}, unknown {unknown}")
        obj = new(cls)
        set_dict(obj, values)
        # Every field is set. One shared set is safe: pydantic copies it before it ever adds
        # to it (model_copy), and adding a field name already there changes nothing.
        set_fields(obj, fields)
        set_extra(obj, None)
        set_private(obj, None)
        return obj

    return build


# ---------------------------------------------------------------------------------------
# Rules: one region's price list
# ---------------------------------------------------------------------------------------


class FlatService(_Frozen):
    """A package: ``price`` per unit of ``quantity`` (usually 1 job)."""

    strategy: Literal["flat"] = "flat"
    code: Code
    description: str = ""
    unit: str = "job"
    price: Price


class HourlyService(_Frozen):
    """Base fee + time: worked minutes minus ``included_minutes``, rounded up to a multiple
    of ``increment_minutes``, at ``hourly_rate``; topped up to ``minimum_charge``."""

    strategy: Literal["hourly"] = "hourly"
    code: Code
    description: str = ""
    base_fee: Price = Decimal(0)
    hourly_rate: Price
    # A multiple of 3 so that billed hours are exact decimals (6, 12, 15, 30, 60 …).
    increment_minutes: int = Field(default=30, gt=0, le=1440)
    included_minutes: int = Field(default=0, ge=0, le=1_000_000)
    minimum_charge: Price = Decimal(0)


class Tier(_Frozen):
    """Quantities above ``over`` up to and including ``up_to`` (``None``: no upper bound)."""

    over: Quantity
    up_to: Quantity | None = None
    unit_price: Price


class TieredService(_Frozen):
    strategy: Literal["tiered"] = "tiered"
    code: Code
    description: str = ""
    unit: str = "unit"
    mode: TierMode
    tiers: tuple[Tier, ...] = Field(min_length=1)


class QuotedService(_Frozen):
    """A price agreed per ticket (a repair quote): the request's ``ServiceItem.amount`` per unit
    of quantity, in the price-list currency. Only a quoted service accepts an amount."""

    strategy: Literal["quoted"] = "quoted"
    code: Code
    description: str = ""
    unit: str = "job"


ServiceRule = Annotated[FlatService | HourlyService | TieredService | QuotedService, Field(discriminator="strategy")]


class PartPrice(_Frozen):
    sku: Code
    name: str = ""
    unit: str = "pcs"
    price: Price


class Adjustment(_Frozen):
    """A percentage adjustment when the request names condition ``when`` (``"urban"`` +20,
    ``"tier3_city"`` -10; ``None``: always), on the lines of the kinds in ``applies_to``."""

    code: Code
    description: str = ""
    when: str | None = None
    percent: Percent
    applies_to: tuple[LineKind, ...] = (LineKind.SERVICE,)


class PercentSurcharge(_Frozen):
    type: Literal["percent"] = "percent"
    code: Code
    description: str = ""
    when: str | None = None  # None: always
    percent: Percent
    applies_to: tuple[LineKind, ...] = (LineKind.SERVICE, LineKind.ADJUSTMENT)


class FixedSurcharge(_Frozen):
    type: Literal["fixed"] = "fixed"
    code: Code
    description: str = ""
    when: str | None = None
    amount: Price


class DistanceSurcharge(_Frozen):
    """Travel: kilometres beyond ``free_km``, rounded up to ``increment_km``, at ``per_km``."""

    type: Literal["distance"] = "distance"
    code: Code
    description: str = ""
    when: str | None = None
    per_km: Price
    free_km: Quantity = Decimal(0)
    increment_km: Quantity = Decimal(1)


SurchargeRule = Annotated[PercentSurcharge | FixedSurcharge | DistanceSurcharge, Field(discriminator="type")]


class MemberDiscount(_Frozen):
    level: Code
    percent: Percent


class ReferralTier(_Frozen):
    """``min_referrals`` or more referrals → ``percent`` off (the best matching tier applies)."""

    min_referrals: int = Field(ge=0, le=1_000_000)
    percent: Percent


class DiscountRules(_Frozen):
    member_levels: tuple[MemberDiscount, ...] = ()
    referral_tiers: tuple[ReferralTier, ...] = ()
    combine: DiscountCombine = DiscountCombine.BEST
    applies_to: tuple[LineKind, ...] = (LineKind.SERVICE, LineKind.ADJUSTMENT, LineKind.SURCHARGE)


class TaxRule(_Frozen):
    name: str = "VAT"
    mode: TaxMode
    percent: Percent


class SplitShare(_Frozen):
    party: Code
    share: Share


class RegionPricing(_Frozen):
    """One region's price rules. ``currency`` is the price-list currency."""

    region: str
    version: str = "1"
    currency: CurrencyCode
    services: tuple[ServiceRule, ...] = ()
    parts: tuple[PartPrice, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()
    surcharges: tuple[SurchargeRule, ...] = ()
    discounts: DiscountRules = DiscountRules()
    tax: TaxRule
    split: tuple[SplitShare, ...] = Field(min_length=1)


# ---------------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------------


class ServiceItem(_Frozen):
    """One service performed: ``quantity`` for flat and tiered services, ``minutes`` worked
    for hourly ones (their quantity stays 1), ``amount`` (per unit, price-list currency) for
    quoted ones — required there and refused anywhere else."""

    code: Code
    quantity: Quantity = Decimal(1)
    minutes: int | None = Field(default=None, ge=0, le=1_000_000)
    amount: Price | None = None


class PartItem(_Frozen):
    sku: Code
    quantity: Quantity


class ExchangeRate(_Frozen):
    """1 ``base`` = ``rate`` ``quote``."""

    base: CurrencyCode
    quote: CurrencyCode
    rate: Rate


class RateSnapshot(_Frozen):
    """The exchange rates as they were when settlement started (taken by an activity)."""

    taken_at: datetime
    source: str = ""
    rates: tuple[ExchangeRate, ...] = ()


class Coverage(_Frozen):
    """Who pays instead of the customer: a warranty or a service contract, by name (it appears on
    every line it covers: ``"warranty until 2027-03-31"``, ``"contract SC-2026-0042"``)."""

    name: str = Field(min_length=1, max_length=200)
    covers: CoverageScope


class PricingRequest(_Frozen):
    reference: str | None = None  # e.g. the ticket id; echoed on the statement
    region: str
    currency: CurrencyCode  # the billing currency
    services: tuple[ServiceItem, ...] = ()
    parts: tuple[PartItem, ...] = ()
    # Conditions the rules react to: "urban", "tier3_city", "night", "rush", "high_altitude"…
    conditions: tuple[str, ...] = ()
    travel_km: Quantity = Decimal(0)
    member_level: str | None = None
    referrals: int = Field(default=0, ge=0, le=1_000_000)
    rates: RateSnapshot | None = None  # needed when currency differs from the price list
    # Warranties and contracts: a covered service or part line is priced at zero and names
    # the first coverage (in this order) that covers its kind.
    coverage: tuple[Coverage, ...] = Field(default=(), max_length=8)


# ---------------------------------------------------------------------------------------
# Statement
# ---------------------------------------------------------------------------------------


class StatementLine(_Frozen):
    """One line. ``amount`` = round(quantity × unit_price) in the statement currency;
    percentage lines also carry ``percent`` and the ``base`` it was applied to (their
    quantity is 1 and unit price the amount). ``net + tax == gross`` on every line."""

    kind: LineKind
    code: str
    description: str
    quantity: ExactDecimal
    unit: str
    unit_price: Money
    amount: Money  # as priced: net in exclusive tax mode, gross in inclusive mode
    rule: str  # the rule that produced the line, e.g. "services.AC-REPAIR.hourly_rate"
    percent: ExactDecimal | None = None
    base: Money | None = None
    list_unit_price: Money | None = None  # in the price-list currency, when converted or covered
    net: Money
    tax: Money
    gross: Money
    # A covered line: the coverage's name, and what the line would have cost (its amount at
    # the list price); its unit price, amount, net, tax and gross are zero.
    coverage: str | None = None
    covered_amount: Money | None = None


class Totals(_Frozen):
    """Sums of the lines' ``amount`` per kind, and of ``net``, ``tax``, ``gross`` overall."""

    services: Money
    parts: Money
    adjustments: Money
    surcharges: Money
    discounts: Money  # zero or negative
    subtotal: Money  # Σ amount
    net: Money
    tax: Money
    total: Money  # Σ gross = net + tax


class AppliedTax(_Frozen):
    name: str
    mode: TaxMode
    percent: ExactDecimal


class PricingInputs(_Frozen):
    """What a settlement priced with, after looking the ticket up (docs/pricing.md, *Where the
    inputs come from*): the ticket facts it used, the values that went into the request, and
    ``notes`` on anything it left out (an unknown member level, no engineer location…)."""

    customer_id: str | None = None  # the customer priced (a merged record: the survivor)
    asset_id: str | None = None
    engineer_id: str | None = None
    worked_at: datetime | None = None
    member_level: str | None = None
    referrals: int = 0
    travel_km: ExactDecimal = Decimal(0)
    conditions: tuple[str, ...] = ()
    coverage: tuple[Coverage, ...] = ()
    currency: str = ""
    rates_source: str | None = None
    notes: tuple[str, ...] = ()


class Statement(_Frozen):
    """A priced request: every line, the totals, the components and the revenue split, all
    in ``currency``; ``rates_used`` are the snapshot's rates that converted the price list."""

    reference: str | None
    region: str
    rules_version: str
    currency: str
    price_list_currency: str
    rates_taken_at: datetime | None
    rates_used: tuple[ExchangeRate, ...]
    tax: AppliedTax
    lines: tuple[StatementLine, ...]
    totals: Totals
    # Net amount per kind of line, and the tax: they sum to the total.
    components: dict[str, Money]
    # Each component's share of the total, 4 places; they sum to exactly 1 (all 0 when the
    # total is 0). A discount's share is negative.
    shares: dict[str, ExactDecimal]
    # Party → amount, in the rules' party order; sums to the total exactly.
    split: dict[str, Money]
    # Set by the settle activity, never by the engine: what it looked up and priced with.
    inputs: PricingInputs | None = None
