"""customers, their identities, assets, service contracts, SLA tiers, orders, exchange rates;
tickets know their customer and asset

Revision ID: 0012_customers
Revises: 0011_identity_and_audit
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.inventory_tables import Numeric18_4, Numeric20_10
from models.tables import UTCDateTime

revision: str = "0012_customers"
down_revision: str | None = "0011_identity_and_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=32), sa.ForeignKey("region.code"), nullable=False),
        sa.Column("member_level", sa.String(length=32), nullable=True),
        sa.Column("referral_code", sa.String(length=32), nullable=False),
        sa.Column("referred_by", sa.String(length=32), nullable=True),
        sa.Column("consent", sa.JSON(), nullable=False),
        sa.Column("billing_currency", sa.String(length=3), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("notes", sa.String(length=2000), nullable=False),
        sa.Column("merged_into", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('person', 'company')", name="ck_customer_kind"),
        sa.UniqueConstraint("referral_code"),
    )
    op.create_index("ix_customer_region", "customer", ["region"])
    op.create_index("ix_customer_region_name", "customer", ["region", "name"])
    op.create_index("ix_customer_referred_by", "customer", ["referred_by"])
    op.create_index("ix_customer_merged_into", "customer", ["merged_into"])

    op.create_table(
        "customer_identity",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.String(length=32), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("kind", "value", name="uq_customer_identity_kind_value"),
        sa.CheckConstraint(
            "kind IN ('phone', 'email', 'wechat_openid', 'wechat_unionid', 'app_user')",
            name="ck_customer_identity_kind",
        ),
    )
    op.create_index("ix_customer_identity_customer_id", "customer_identity", ["customer_id"])

    op.create_table(
        "sla_tier",
        sa.Column("code", sa.String(length=32), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("response_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
    )

    op.create_table(
        "asset",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("customer_id", sa.String(length=32), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("region", sa.String(length=32), sa.ForeignKey("region.code"), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("qr_code", sa.String(length=64), nullable=False),
        sa.Column("site_address", sa.String(length=500), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("installed_on", sa.Date(), nullable=True),
        sa.Column("warranty_end", sa.Date(), nullable=True),
        sa.Column("warranty_covers", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("serial"),
        sa.UniqueConstraint("qr_code"),
        sa.CheckConstraint(
            "warranty_covers IN ('labour', 'parts', 'labour_and_parts')", name="ck_asset_warranty_covers"
        ),
    )
    op.create_index("ix_asset_customer_id", "asset", ["customer_id"])
    op.create_index("ix_asset_region", "asset", ["region"])

    op.create_table(
        "service_contract",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=32), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("asset_id", sa.String(length=32), sa.ForeignKey("asset.id"), nullable=True),
        sa.Column("covers_labour", sa.Boolean(), nullable=False),
        sa.Column("covers_parts", sa.Boolean(), nullable=False),
        sa.Column("sla_tier", sa.String(length=32), sa.ForeignKey("sla_tier.code"), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("number"),
        sa.CheckConstraint("valid_to >= valid_from", name="ck_service_contract_validity"),
    )
    op.create_index("ix_service_contract_asset_id", "service_contract", ["asset_id"])
    op.create_index("ix_service_contract_customer_valid", "service_contract", ["customer_id", "valid_to"])

    op.create_table(
        "customer_order",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.String(length=32), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_ref", sa.String(length=200), nullable=False),
        sa.Column("placed_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount", Numeric18_4(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("asset_id", sa.String(length=32), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.UniqueConstraint("source", "external_ref", name="uq_customer_order_source_ref"),
    )
    op.create_index("ix_customer_order_customer_placed", "customer_order", ["customer_id", "placed_at"])

    op.create_table(
        "exchange_rate",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("quote", sa.String(length=3), nullable=False),
        sa.Column("rate", Numeric20_10(), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.UniqueConstraint("base", "quote", "as_of", name="uq_exchange_rate_pair_as_of"),
    )

    with op.batch_alter_table("ticket") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("asset_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("satisfaction", sa.Integer(), nullable=True))
    op.create_index("ix_ticket_customer_id", "ticket", ["customer_id"])
    op.create_index("ix_ticket_asset_id", "ticket", ["asset_id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_asset_id", "ticket")
    op.drop_index("ix_ticket_customer_id", "ticket")
    with op.batch_alter_table("ticket") as batch:
        batch.drop_column("satisfaction")
        batch.drop_column("asset_id")
        batch.drop_column("customer_id")
    for table in ("exchange_rate", "customer_order", "service_contract", "asset", "sla_tier", "customer_identity"):
        op.drop_table(table)
    op.drop_table("customer")
