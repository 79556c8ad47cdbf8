"""customer messages: the outbox the projection writes and the per-language templates

Revision ID: 0018_customer_messages
Revises: 0014_integrations
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0018_customer_messages"
down_revision: str | None = "0014_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "kind IN ('accepted', 'on_the_way', 'info_needed', 'resolved', 'closed')"


def upgrade() -> None:
    op.create_table(
        "customer_message",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.String(length=32), sa.ForeignKey("ticket.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("held_until", UTCDateTime(), nullable=True),
        sa.Column("quiet_exempt", sa.Boolean(), nullable=False),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("ticket_id", "seq", "kind", "channel", name="uq_customer_message_key"),
        sa.CheckConstraint(KINDS, name="ck_customer_message_kind"),
        sa.CheckConstraint(
            "channel IN ('sms', 'email', 'wechat', 'webhook', 'none')", name="ck_customer_message_channel"
        ),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed', 'skipped')", name="ck_customer_message_status"),
    )
    op.create_index("ix_customer_message_customer_id", "customer_message", ["customer_id"])
    op.create_index("ix_customer_message_due", "customer_message", ["channel", "status", "next_attempt_at"])
    op.create_index("ix_customer_message_ticket", "customer_message", ["ticket_id", "channel", "seq"])
    op.create_table(
        "customer_message_template",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_type", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("ticket_type", "kind", "language", "channel", name="uq_customer_message_template_key"),
        sa.CheckConstraint(KINDS, name="ck_customer_message_template_kind"),
    )


def downgrade() -> None:
    op.drop_table("customer_message_template")
    op.drop_index("ix_customer_message_ticket", table_name="customer_message")
    op.drop_index("ix_customer_message_due", table_name="customer_message")
    op.drop_index("ix_customer_message_customer_id", table_name="customer_message")
    op.drop_table("customer_message")
