"""HTTP schemas of the settlement API (``/tickets/{id}/statement``, ``/statements``,
``/pricing``). See docs/settlement.md.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from models.pricing import (
    AppliedTax,
    ExactDecimal,
    ExchangeRate,
    LineKind,
    Money,
    PricingInputs,
    Statement,
    StatementLine,
    Totals,
)
from models.settlement import SettlementKind


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
    coverage: str | None = None  # a covered line: the warranty or contract that pays
    covered_amount: Money | None = None  # what the covered line would have cost


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
    inputs: PricingInputs | None = None  # the ticket facts priced with (docs/pricing.md)


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
