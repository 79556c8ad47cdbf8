"""settlement: published price rules per region, statements (one per ticket, version and kind)

Revision ID: 0006_settlement
Revises: 0005_merge
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_settlement"
down_revision: str | None = "0005_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NUMERIC(18, 4) on PostgreSQL; exact decimal text on SQLite (see models.inventory_tables.Numeric18_4).
MONEY = sa.Numeric(18, 4).with_variant(sa.String(40), "sqlite")
UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "price_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(["region"], ["region.code"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("region", "version", name="uq_price_rules_region_version"),
    )
    # At most one active version per region.
    op.create_index(
        "uq_price_rules_active",
        "price_rules",
        ["region"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "statement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("ticket_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("ticket_type", sa.String(64), nullable=False),
        sa.Column("rules_version", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("net", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("statement", sa.JSON(), nullable=False),
        sa.Column("pre_settlement_total", MONEY, nullable=True),
        sa.Column("over_budget", sa.Boolean(), nullable=False),
        sa.Column("budget", MONEY, nullable=True),
        sa.Column("budget_tolerance_percent", MONEY, nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.CheckConstraint("status IN ('final', 'pre_settlement')", name="ck_statement_status"),
        sa.CheckConstraint("ticket_version >= 1", name="ck_statement_ticket_version"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "ticket_version", "status", name="uq_statement_ticket_version_status"),
    )
    op.create_index("ix_statement_ticket_id", "statement", ["ticket_id"])
    op.create_index("ix_statement_region_created", "statement", ["region", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_statement_region_created", table_name="statement")
    op.drop_index("ix_statement_ticket_id", table_name="statement")
    op.drop_table("statement")
    op.drop_index("uq_price_rules_active", table_name="price_rules")
    op.drop_table("price_rules")
