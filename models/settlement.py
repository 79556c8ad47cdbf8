"""Settlement data shapes: the tables (``price_rules``, ``statement``), the payloads of the
``settlement.settle`` activity (plain Pydantic, the only settlement shapes that travel through
Temporal) and the HTTP schemas of the settlement API. See docs/settlement.md.

Money is ``Decimal`` everywhere: ``NUMERIC(18, 4)`` in the tables (exact decimal text on
SQLite, see ``models.inventory_tables.Numeric18_4``), the full statement as JSON with every
amount a string, and strings in every JSON payload (``models.pricing.ExactDecimal``).
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field as PydanticField
from sqlmodel import Field, SQLModel

from models.inventory_tables import Numeric18_4
from models.pricing import (
    AppliedTax,
    CurrencyCode,
    ExchangeRate,
    LineKind,
    ExactDecimal,
    Money,
    PartItem,
    PricingRequest,
    Quantity,
    RateSnapshot,
    ServiceItem,
    Statement,
    StatementLine,
    Totals,
)
from models.tables import UTC_DATETIME


class SettlementKind(StrEnum):
    """The ``statement.status`` column: a pre-settlement locks the amount agreed before the work
    starts; the final settlement is what is owed, checked against the pre-settlement."""

    FINAL = "final"
    PRE_SETTLEMENT = "pre_settlement"


SETTLEMENT_KINDS = tuple(k.value for k in SettlementKind)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# ============================================================================================
# Tables (SQLModel). Never sent in a Temporal payload.
# ============================================================================================


class PriceRules(SQLModel, table=True):
    """One published, immutable version of a region's price rules (``RegionPricing`` as JSON).
    At most one version per region is active: the one settlements use."""

    __tablename__ = "price_rules"
    __table_args__ = (
        sa.UniqueConstraint("region", "version", name="uq_price_rules_region_version"),
        sa.Index(
            "uq_price_rules_active",
            "region",
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    region: str = Field(max_length=32, foreign_key="region.code")
    version: str = Field(max_length=64)
    rules: dict[str, Any] = Field(sa_type=sa.JSON)  # RegionPricing.model_dump(mode="json")
    active: bool = False
    created_by: str = Field(default="system", max_length=64)
    created_at: datetime = Field(sa_type=UTC_DATETIME)


class StatementRow(SQLModel, table=True):
    """One settlement of a ticket: the full statement as JSON plus the figures lists, budget
    checks and the reconciliation export need as columns. Written once, never updated:
    ``(ticket_id, ticket_version, status)`` is unique, so a retried settlement finds its row."""

    __tablename__ = "statement"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "ticket_version", "status", name="uq_statement_ticket_version_status"),
        sa.CheckConstraint(_in("status", SETTLEMENT_KINDS), name="ck_statement_status"),
        sa.CheckConstraint("ticket_version >= 1", name="ck_statement_ticket_version"),
        sa.Index("ix_statement_region_created", "region", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=64, index=True)
    # The settlement attempt number (normally 1); a re-settlement of a ticket is version 2, …
    ticket_version: int = 1
    status: str = Field(max_length=16)  # SettlementKind
    region: str = Field(max_length=32)
    ticket_type: str = Field(default="", max_length=64)
    rules_version: str = Field(max_length=64)
    currency: str = Field(max_length=3)
    net: Decimal = Field(sa_type=Numeric18_4)
    tax: Decimal = Field(sa_type=Numeric18_4)
    total: Decimal = Field(sa_type=Numeric18_4)
    statement: dict[str, Any] = Field(sa_type=sa.JSON)  # Statement.model_dump(mode="json")
    # Final settlements: the total of the ticket's pre-settlement at the time (None: there was none).
    pre_settlement_total: Decimal | None = Field(default=None, sa_type=Numeric18_4)
    over_budget: bool = False
    budget: Decimal | None = Field(default=None, sa_type=Numeric18_4)
    budget_tolerance_percent: Decimal | None = Field(default=None, sa_type=Numeric18_4)
    created_at: datetime = Field(sa_type=UTC_DATETIME)


# ============================================================================================
# Activity payloads: settlement.settle
# ============================================================================================

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


# ============================================================================================
# HTTP schemas
# ============================================================================================


class PublicStatementLine(_Payload):
    """A statement line without the finance-only ``rule``."""

    kind: LineKind
    code: str
    description: str
    quantity: ExactDecimal
    unit: str
    unit_price: Money
    amount: Money
    percent: ExactDecimal | None = None
    base: Money | None = None
    list_unit_price: Money | None = None
    net: Money
    tax: Money
    gross: Money


class PublicStatement(_Payload):
    """A statement without the finance-only fields (the revenue ``split``, each line's ``rule``)."""

    reference: str | None
    region: str
    rules_version: str
    currency: str
    price_list_currency: str
    rates_taken_at: datetime | None
    rates_used: tuple[ExchangeRate, ...]
    tax: AppliedTax
    lines: tuple[PublicStatementLine, ...]
    totals: Totals
    components: dict[str, Money]
    shares: dict[str, ExactDecimal]


#: What ``redact`` removes for callers without a finance role.
FINANCE_ONLY_STATEMENT_FIELDS = ("split",)
FINANCE_ONLY_LINE_FIELDS = ("rule",)
assert set(FINANCE_ONLY_LINE_FIELDS) <= set(StatementLine.model_fields)


class StatementSummary(BaseModel):
    """One statement in a list (no lines)."""

    id: int
    ticket_id: str
    ticket_version: int
    status: SettlementKind
    region: str
    ticket_type: str
    rules_version: str
    currency: str
    net: Money
    tax: Money
    total: Money
    over_budget: bool
    budget: Money | None
    pre_settlement_total: Money | None
    difference: Money | None
    created_at: datetime


class StatementOut(StatementSummary):
    """A ticket's statement. ``statement`` is the full ``Statement`` for finance and admin, a
    ``PublicStatement`` (no split, no line rules) for everyone else."""

    budget_tolerance_percent: ExactDecimal | None
    budget_limit: Money | None
    budget_reason: str | None
    exceeds_pre_settlement: bool
    finance_view: bool  # False: the finance-only fields were removed
    statement: Statement | PublicStatement


class StatementPage(BaseModel):
    items: list[StatementSummary]
    limit: int
    offset: int


class PriceRulesOut(BaseModel):
    """A published version of a region's rules. ``rules`` is the ``RegionPricing`` JSON (strings
    for every amount); callers without a finance role get it without the revenue ``split``."""

    region: str
    version: str
    active: bool
    created_by: str
    created_at: datetime
    finance_view: bool
    rules: dict[str, Any]


class PriceRulesVersion(BaseModel):
    region: str
    version: str
    active: bool
    created_by: str
    created_at: datetime
