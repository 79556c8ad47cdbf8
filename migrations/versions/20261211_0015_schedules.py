"""schedules: the Temporal Schedules the API manages (maintenance plans, follow-ups)

Revision ID: 0015_schedules
Revises: 0014_integrations
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0015_schedules"
down_revision: str | None = "0014_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_schedule",
        sa.Column("id", sa.String(length=128), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=32), sa.ForeignKey("region.code"), nullable=False),
        sa.Column("ticket_type", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("asset_id", sa.String(length=32), nullable=True),
        sa.Column("customer_id", sa.String(length=32), nullable=True),
        sa.Column("contract", sa.String(length=64), nullable=True),
        sa.Column("every_s", sa.Integer(), nullable=True),
        sa.Column("start_at", UTCDateTime(), nullable=True),
        sa.Column("end_at", UTCDateTime(), nullable=True),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("source_ticket", sa.String(length=32), nullable=True),
        sa.Column("ticket", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('maintenance', 'follow_up')", name="ck_maintenance_schedule_kind"),
        sa.CheckConstraint("state IN ('active', 'paused', 'deleted')", name="ck_maintenance_schedule_state"),
    )
    op.create_index("ix_maintenance_schedule_region_created", "maintenance_schedule", ["region", "created_at"])
    op.create_index("ix_maintenance_schedule_asset_id", "maintenance_schedule", ["asset_id"])
    op.create_index("ix_maintenance_schedule_source_ticket", "maintenance_schedule", ["source_ticket"])


def downgrade() -> None:
    op.drop_table("maintenance_schedule")
