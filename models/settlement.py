"""Settlement data shapes that travel through Temporal: the payloads of the ``settlement.settle``
activity (plain Pydantic). The tables are in ``models/settlement_tables.py``, the HTTP schemas of
the settlement API in ``models/settlement_http.py``. See docs/settlement.md.

Money is ``Decimal`` everywhere: ``NUMERIC(18, 4)`` in the tables (exact decimal text on
SQLite, see ``models.inventory_tables.Numeric18_4``), the full statement as JSON with every
amount a string, and strings in every JSON payload (``models.pricing.ExactDecimal``).
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField

from models.pricing import (
    CurrencyCode,
    ExactDecimal,
    Money,
    PartItem,
    PricingRequest,
    Quantity,
    RateSnapshot,
    ServiceItem,
    Statement,
)


class SettlementKind(StrEnum):
    """The ``statement.status`` column: a pre-settlement locks the amount agreed before the work
    starts; the final settlement is what is owed, checked against the pre-settlement."""

    FINAL = "final"
    PRE_SETTLEMENT = "pre_settlement"


#: A budget in the billing currency (at most 4 places: it is stored as NUMERIC(18, 4)).
Budget = Annotated[ExactDecimal, PydanticField(ge=0, max_digits=18, decimal_places=4)]
#: Tolerance over the budget, in percent ("10" = 10 %).
Tolerance = Annotated[ExactDecimal, PydanticField(ge=0, max_digits=9, decimal_places=4)]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SettleItems(_Payload):
    """What was done, without the ticket facts ``SettleInput`` already carries: the activity
    makes the ``PricingRequest`` (``region`` and ``reference`` from the input; ``currency``
    defaults to the price-list currency of the region's rules)."""

    currency: CurrencyCode | None = None
    services: tuple[ServiceItem, ...] = ()
    parts: tuple[PartItem, ...] = ()
    conditions: tuple[str, ...] = ()
    travel_km: Quantity = Decimal(0)
    member_level: str | None = None
    referrals: int = PydanticField(default=0, ge=0, le=1_000_000)


class SettleContext(_Payload):
    """The ticket facts pricing looks up at settlement time (docs/pricing.md, *Where the inputs
    come from*): the customer (member level, referrals, billing currency), the asset (warranty) and
    its contracts (coverage), the engineer who did the work and the site (travel distance), and
    when the work was done (the night and holiday conditions of the region's calendar)."""

    customer_id: str | None = PydanticField(default=None, max_length=32)
    asset_id: str | None = PydanticField(default=None, max_length=32)
    engineer_id: str | None = PydanticField(default=None, max_length=64)
    site_lat: float | None = PydanticField(default=None, ge=-90, le=90)
    site_lon: float | None = PydanticField(default=None, ge=-180, le=180)
    worked_at: datetime | None = None


class SettleInput(_Payload):
    """Input of ``settlement.settle``. ``(ticket_id, ticket_version, kind)`` is the idempotency
    key: the first attempt prices and stores, every later one returns the stored statement."""

    ticket_id: str = PydanticField(min_length=1, max_length=64)
    ticket_version: int = PydanticField(default=1, ge=1)  # the settlement attempt number
    region: str = PydanticField(min_length=1, max_length=32)
    ticket_type: str = PydanticField(default="", max_length=64)
    kind: SettlementKind = SettlementKind.FINAL
    # A ready PricingRequest (its region must be ``region``), or just the items.
    request: PricingRequest | SettleItems
    budget: Budget | None = None
    budget_tolerance_percent: Tolerance = Decimal(0)
    # The rate snapshot taken at settlement time; overrides ``request.rates`` when given.
    rates: RateSnapshot | None = None
    # Ticket facts the activity looks up (customer, asset, contracts, distance, calendar) and
    # adds to ``SettleItems``; None: the items are priced as they are.
    context: SettleContext | None = None


class SettleResult(_Payload):
    """Output of ``settlement.settle``, rebuilt from the stored row on every attempt, so a retry
    answers exactly what the first attempt answered."""

    statement_id: int
    ticket_id: str
    ticket_version: int
    kind: SettlementKind
    region: str
    rules_version: str
    currency: str
    total: Money
    created_at: datetime
    # Budget check: over when total > budget × (1 + tolerance / 100).
    over_budget: bool
    budget: Money | None = None
    budget_tolerance_percent: ExactDecimal | None = None
    budget_limit: Money | None = None  # budget × (1 + tolerance / 100)
    budget_reason: str | None = None  # why the statement is over budget, for the approver
    # Final settlements: the pre-settlement's total, total − it, and whether the final is higher.
    pre_settlement_total: Money | None = None
    difference: Money | None = None
    exceeds_pre_settlement: bool = False
    statement: Statement
