"""notifications: outbox, in-app inbox, actor contact details

Revision ID: 0003_notifications
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_notifications"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedup_key", sa.String(512), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("base_key", sa.String(200), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("dedup_key"),
    )
    op.create_index("ix_notification_outbox_base_key", "notification_outbox", ["base_key"])
    op.create_index("ix_notification_outbox_ticket_id", "notification_outbox", ["ticket_id"])
    op.create_index("ix_notification_outbox_status", "notification_outbox", ["status"])

    op.create_table(
        "notification_inbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedup_key", sa.String(512), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("dedup_key"),
    )
    op.create_index("ix_notification_inbox_actor_created", "notification_inbox", ["actor_id", "created_at"])
    op.create_index("ix_notification_inbox_ticket_id", "notification_inbox", ["ticket_id"])

    op.create_table(
        "notification_contact",
        sa.Column("actor_id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("im_user", sa.String(128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_contact")
    op.drop_index("ix_notification_inbox_ticket_id", table_name="notification_inbox")
    op.drop_index("ix_notification_inbox_actor_created", table_name="notification_inbox")
    op.drop_table("notification_inbox")
    op.drop_index("ix_notification_outbox_status", table_name="notification_outbox")
    op.drop_index("ix_notification_outbox_ticket_id", table_name="notification_outbox")
    op.drop_index("ix_notification_outbox_base_key", table_name="notification_outbox")
    op.drop_table("notification_outbox")
