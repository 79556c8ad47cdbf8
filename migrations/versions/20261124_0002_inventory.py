"""inventory: parts, warehouses, stock levels, stock ledger, low-stock alerts

Revision ID: 0002_inventory
Revises: 0001
Create Date: 2026-11-24 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_inventory"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NUMERIC(18, 4) on PostgreSQL; exact decimal text on SQLite (see models.inventory_tables.Numeric18_4).
PRICE = sa.Numeric(18, 4).with_variant(sa.String(40), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "part",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("unit_price", PRICE, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reorder_point", sa.Integer(), nullable=False),
        sa.Column("reorder_qty", sa.Integer(), nullable=False),
        sa.CheckConstraint("unit_price >= 0", name="ck_part_unit_price"),
        sa.CheckConstraint("reorder_point >= 0", name="ck_part_reorder_point"),
        sa.CheckConstraint("reorder_qty >= 0", name="ck_part_reorder_qty"),
        sa.PrimaryKeyConstraint("sku"),
    )
    op.create_table(
        "warehouse",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.CheckConstraint("kind IN ('regional', 'project')", name="ck_warehouse_kind"),
        sa.ForeignKeyConstraint(["region"], ["region.code"]),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_index("ix_warehouse_region", "warehouse", ["region"])
    op.create_table(
        "stock_level",
        sa.Column("warehouse", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.CheckConstraint("on_hand >= 0", name="ck_stock_level_on_hand"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_level_reserved"),
        sa.CheckConstraint("reserved <= on_hand", name="ck_stock_level_reserved_le_on_hand"),
        sa.ForeignKeyConstraint(["warehouse"], ["warehouse.code"]),
        sa.ForeignKeyConstraint(["sku"], ["part.sku"]),
        sa.PrimaryKeyConstraint("warehouse", "sku"),
    )
    op.create_index("ix_stock_level_sku", "stock_level", ["sku"])
    op.create_table(
        "stock_movement",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("warehouse", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=True),
        sa.Column("node_id", sa.String(100), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("allocation", sa.Integer(), nullable=True),
        sa.Column("actor_id", sa.String(64), nullable=True),
        sa.Column("at", UTC_TS, nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.CheckConstraint(
            "kind IN ('receipt', 'reservation', 'release', 'consumption', 'adjustment', 'transfer')",
            name="ck_stock_movement_kind",
        ),
        sa.CheckConstraint("quantity <> 0", name="ck_stock_movement_quantity"),
        sa.ForeignKeyConstraint(["warehouse"], ["warehouse.code"]),
        sa.ForeignKeyConstraint(["sku"], ["part.sku"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_stock_movement_ticket_node", "stock_movement", ["ticket_id", "node_id"])
    op.create_index("ix_stock_movement_warehouse", "stock_movement", ["warehouse"])
    op.create_index("ix_stock_movement_sku", "stock_movement", ["sku"])
    op.create_table(
        "stock_alert",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("warehouse", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("reorder_point", sa.Integer(), nullable=False),
        sa.Column("available_at_open", sa.Integer(), nullable=False),
        sa.Column("suggested_qty", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTC_TS, nullable=False),
        sa.Column("closed_at", UTC_TS, nullable=True),
        sa.Column("available_at_close", sa.Integer(), nullable=True),
        sa.Column("notified_at", UTC_TS, nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_stock_alert_status"),
        sa.ForeignKeyConstraint(["warehouse"], ["warehouse.code"]),
        sa.ForeignKeyConstraint(["sku"], ["part.sku"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stock_alert_warehouse", "stock_alert", ["warehouse"])
    op.create_index("ix_stock_alert_status", "stock_alert", ["status"])
    # At most one open alert per (warehouse, sku): "raised once per crossing", race-free.
    op.create_index(
        "uq_stock_alert_open",
        "stock_alert",
        ["warehouse", "sku"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_table("stock_alert")
    op.drop_table("stock_movement")
    op.drop_table("stock_level")
    op.drop_table("warehouse")
    op.drop_table("part")
