"""inbound customer channels: the channel registry and the delivery-id record

Revision ID: 0013_channels
Revises: 0012_customers
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0013_channels"
down_revision: str | None = "0012_customers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel",
        sa.Column("code", sa.String(length=32), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("adapter", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=64), sa.ForeignKey("actor.id"), nullable=False),
        sa.Column("default_region", sa.String(length=32), sa.ForeignKey("region.code"), nullable=False),
        sa.Column("default_ticket_type", sa.String(length=64), nullable=True),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("previous_secret", sa.String(length=128), nullable=True),
        sa.Column("previous_secret_until", UTCDateTime(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("secret_rotated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('wechat', 'qr_form', 'app')", name="ck_channel_kind"),
    )
    op.create_table(
        "channel_delivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=32), sa.ForeignKey("channel.code"), nullable=False),
        sa.Column("delivery_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=True),
        sa.Column("intent", sa.String(length=16), nullable=True),
        sa.Column("ticket_id", sa.String(length=32), nullable=True),
        sa.Column("customer_id", sa.String(length=32), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("channel", "delivery_id", name="uq_channel_delivery_channel_delivery_id"),
        sa.CheckConstraint(
            "outcome IN ('created', 'replied', 'confirmed', 'rejected', 'photo_added')",
            name="ck_channel_delivery_outcome",
        ),
    )
    op.create_index("ix_channel_delivery_ticket_id", "channel_delivery", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_channel_delivery_ticket_id", "channel_delivery")
    op.drop_table("channel_delivery")
    op.drop_table("channel")
