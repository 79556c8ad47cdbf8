"""SQLModel tables of settlement: ``price_rules`` and ``statement`` (queried by
``store/statements.py``). Never sent in a Temporal payload (the payloads are in
``models/settlement.py``).
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.inventory_tables import Numeric18_4
from models.settlement import SettlementKind
from models.tables import UTC_DATETIME

SETTLEMENT_KINDS = tuple(k.value for k in SettlementKind)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


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
