"""subscriptions and their webhook deliveries (issue #16)

Revision ID: 0021_subscriptions
Revises: 0020_merge
Create Date: 2026-12-12
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0021_subscriptions"
down_revision: str | None = "0020_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscription",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("owner_id", sa.String(length=64), sa.ForeignKey("actor.id"), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("ticket_types", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failure_streak", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("body_templates", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("paused_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("state IN ('active', 'paused')", name="ck_subscription_state"),
    )
    op.create_index("ix_subscription_owner_id", "subscription", ["owner_id"])
    op.create_index("ix_subscription_source", "subscription", ["source"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subscription_id", sa.String(length=40), sa.ForeignKey("subscription.id"), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("subscription_id", "ticket_id", "seq", "event", name="uq_webhook_delivery_key"),
        sa.CheckConstraint("status IN ('pending', 'failed', 'delivered', 'dead')", name="ck_webhook_delivery_status"),
    )
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["subscription_id", "status", "next_attempt_at"])
    op.create_index("ix_webhook_delivery_line", "webhook_delivery", ["subscription_id", "ticket_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_webhook_delivery_line", table_name="webhook_delivery")
    op.drop_index("ix_webhook_delivery_due", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_index("ix_subscription_source", table_name="subscription")
    op.drop_index("ix_subscription_owner_id", table_name="subscription")
    op.drop_table("subscription")
